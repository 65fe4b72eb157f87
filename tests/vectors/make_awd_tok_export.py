"""A fastai classifier whose pipeline tokenizes with awd's drop-in (`tok=awd.SpacyTokenizer()`),
exported with `learn.export()`, and fastai's `learn.predict` on a few texts: what
tests/fastai_export.rs reads to check that `awd serve` / `awd classify predict` take such exports.

A small AWD-LSTM (emb 16, hidden 24, 2 layers, no pretraining), one epoch on 400 shared reviews.
Run with fastai 2.8.12 and awd's Python package installed:
    python make_awd_tok_export.py ../../../shared/data/rotten_tomatoes.csv awd_tok_export/"""
import json, sys, warnings
from pathlib import Path
warnings.simplefilter("ignore")
import pandas as pd
import awd
from fastai.text.all import *

csv, out = sys.argv[1], Path(sys.argv[2])
set_seed(0)
df = pd.read_csv(csv).head(400)
dls = TextDataLoaders.from_df(df, text_col="text", label_col="label", valid_pct=0.2, seed=0,
                              tok_tfm=awd.SpacyTokenizer(), bs=32)
config = dict(awd_lstm_clas_config, emb_sz=16, n_hid=24, n_layers=2)
learn = text_classifier_learner(dls, AWD_LSTM, config=config, pretrained=False, drop_mult=0.5)
learn.fit_one_cycle(1, 1e-2)
out.mkdir(parents=True, exist_ok=True)
learn.export(out / "export.pkl")
learn = load_learner(out / "export.pkl")
texts = list(df["text"].tail(12)) + ["Great!", "A DULL, DULL film... <br />Avoid."]
with open(out / "probes.jsonl", "w") as f:
    for t in texts:
        label, index, probs = learn.predict(t)
        f.write(json.dumps({"text": t, "label": str(label), "probs": [float(p) for p in probs]}) + "\n")
