"""fastai's side of the LM fine-tuning comparison: the same recipe as `awd train --preset finetune`.

    python bench/fastai_finetune.py PRETRAINED_DIR DATA.csv [--epochs N] [--emb 200 --hid 512 --layers 2] [--save-encoder NAME]

PRETRAINED_DIR holds `models/lm.pth` and `models/itos.pkl` (fastai's `pretrained_fnames`). DATA.csv
has `text` and `is_valid` columns. Recipe (fastai's ULMFiT tutorial): drop_mult 0.3, bs 64,
seq_len 72, `fit_one_cycle(1, 2e-2)` frozen, then `unfreeze()` and `fit_one_cycle(N, 2e-3)`.
Prints the validation loss and perplexity after each stage; `--save-encoder NAME` then writes
`PRETRAINED_DIR/models/NAME.pth` (fastai's `save_encoder`) and `PRETRAINED_DIR/models/NAME_vocab.pkl`
for bench/fastai_classify.py.
"""
import argparse, math, time

import pandas as pd
from fastai.text.all import AWD_LSTM, TextDataLoaders, awd_lstm_lm_config, language_model_learner

ap = argparse.ArgumentParser()
ap.add_argument("pretrained")
ap.add_argument("data")
ap.add_argument("--epochs", type=int, default=1)
ap.add_argument("--emb", type=int, default=200)
ap.add_argument("--hid", type=int, default=512)
ap.add_argument("--layers", type=int, default=2)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--save-encoder")
a = ap.parse_args()

from fastai.torch_core import set_seed
set_seed(a.seed)
df = pd.read_csv(a.data)
dls = TextDataLoaders.from_df(df, path=a.pretrained, text_col="text", is_lm=True, valid_col="is_valid", bs=64, seq_len=72)
config = dict(awd_lstm_lm_config, emb_sz=a.emb, n_hid=a.hid, n_layers=a.layers)
learn = language_model_learner(dls, AWD_LSTM, config=config, pretrained=True, pretrained_fnames=["lm", "itos"], drop_mult=0.3)
print(f"vocabulary {len(dls.vocab)}")
t0 = time.perf_counter()
learn.fit_one_cycle(1, 2e-2)
loss = learn.validate()[0]
print(f"after the frozen epoch: valid loss {loss:.4f}, perplexity {math.exp(loss):.2f}")
learn.unfreeze()
learn.fit_one_cycle(a.epochs, 2e-3)
loss = learn.validate()[0]
print(f"after {a.epochs} unfrozen epoch(s): valid loss {loss:.4f}, perplexity {math.exp(loss):.2f} ({time.perf_counter() - t0:.0f} s)")
if a.save_encoder:
    import pickle
    learn.save_encoder(a.save_encoder)
    with open(f"{a.pretrained}/models/{a.save_encoder}_vocab.pkl", "wb") as f:
        pickle.dump(list(dls.vocab), f)
