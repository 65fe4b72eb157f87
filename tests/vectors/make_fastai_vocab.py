"""Records fastai's vocabulary rules for tests/fastai_artifacts.rs (run with PyTorch 2.15 + fastai 2.8.12:
`python3 tests/vectors/make_fastai_vocab.py ../shared/testdata/ulmfit/tokens.jsonl`).

- fastai_vocab.json: the tokens of 300 documents of tokens.jsonl (two articles, then review snippets), and what fastai's
  `make_vocab` (the rules of `Numericalize`) builds from their `Counter` for three settings.
- itos_p{2,3,4,5}.pkl: one small vocabulary pickled with each protocol, as `pickle.dump(list)`.
Not part of awd's build or tests: its outputs are committed.
"""
import json, pickle, sys
from collections import Counter

from fastai.text.data import make_vocab

here = __file__.rsplit("/", 1)[0]
docs = [json.loads(l)["tokens"] for l in open(sys.argv[1])][18:318]
count = Counter(t for d in docs for t in d)
cases = []
for min_freq, max_vocab in [(3, 60000), (1, 200), (2, 1000)]:
    cases.append({"min_freq": min_freq, "max_vocab": max_vocab,
                  "itos": make_vocab(count, min_freq=min_freq, max_vocab=max_vocab)})
json.dump({"docs": docs, "cases": cases}, open(f"{here}/fastai_vocab.json", "w"), ensure_ascii=False)
small = cases[1]["itos"][:40] + ["naïve", "日本", "a\u00a0b", ""]
for p in (2, 3, 4, 5):
    with open(f"{here}/itos_p{p}.pkl", "wb") as f:
        pickle.dump(small, f, protocol=p)
json.dump(small, open(f"{here}/itos_small.json", "w"), ensure_ascii=False)
