"""Records fastai's `tokenize_df` on a small frame (two text columns, so fields are marked, and one
column alone), and fastai's rules + `SpacyTokenizer` split of a few texts, for the Python package's
tests (python/tests). Run with fastai 2.8.12: python make_tokenize_df.py > tokenize_df.json"""
import json, warnings
warnings.simplefilter("ignore")
import pandas as pd
from fastai.text.core import tokenize_df, SpacyTokenizer, defaults
from fastcore.basics import compose

df = pd.DataFrame({
    "label": ["pos", "neg", "pos", "neg"],
    "title": ["GREAT film", "Meh.", "A  classic!!!", "worst...   ever"],
    "text": ["I loved it -- truly <br />loved it.", "It's not   good, it's BAD BAD BAD.",
             "Watch it\n\ntwice; it's $5 at the U.S. store.", "no no no no no! \u00e9t\u00e9 caf\u00e9"],
})
out = {}
for name, cols in [("one", ["text"]), ("two", ["title", "text"])]:
    res, counter = tokenize_df(df, cols, n_workers=0)
    out[name] = {"columns": list(res.columns), "tokens": [list(t) for t in res["text"]],
                 "lengths": [int(x) for x in res["text_length"]], "counter": dict(counter),
                 "label": list(res["label"])}
tok = SpacyTokenizer()
ruled = [compose(*defaults.text_proc_rules)(t) for t in df["text"]]
out["split"] = {"ruled": ruled, "tokens": [list(t) for t in tok(ruled)]}
print(json.dumps(out, ensure_ascii=False, indent=1))
