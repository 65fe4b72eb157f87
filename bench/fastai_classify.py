"""fastai's side of the classifier comparison: the same recipe as `awd classify train`.

    python bench/fastai_classify.py DATA.csv [--encoder-dir DIR --encoder NAME] [--emb 200 --hid 512 --layers 2]

DATA.csv has `text`, `label` and `is_valid` columns. With `--encoder`, the classifier starts from
`DIR/models/NAME.pth` (fastai's `save_encoder`, e.g. written by bench/fastai_finetune.py
--save-encoder NAME) and uses its vocabulary `DIR/models/NAME_vocab.pkl`. Recipe (fastai's ULMFiT
tutorial): `text_classifier_learner(drop_mult=0.5)`, bs 64, seq_len 72; `fit_one_cycle(1, 2e-2)`;
`freeze_to(-2)`, `fit_one_cycle(1, slice(1e-2/2.6**4, 1e-2))`; `freeze_to(-3)`,
`fit_one_cycle(1, slice(5e-3/2.6**4, 5e-3))`; `unfreeze()`, `fit_one_cycle(2, slice(1e-3/2.6**4, 1e-3))`.
Prints the validation accuracy after each stage and the time.
"""
import argparse, pickle, time

import pandas as pd
from fastai.text.all import (AWD_LSTM, TextDataLoaders, accuracy, awd_lstm_clas_config,
                             text_classifier_learner)
from fastai.torch_core import set_seed

ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("--encoder-dir", default=".")
ap.add_argument("--encoder")
ap.add_argument("--emb", type=int, default=200)
ap.add_argument("--hid", type=int, default=512)
ap.add_argument("--layers", type=int, default=2)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()

set_seed(a.seed)
df = pd.read_csv(a.data)
vocab = None
if a.encoder:
    with open(f"{a.encoder_dir}/models/{a.encoder}_vocab.pkl", "rb") as f:
        vocab = pickle.load(f)
dls = TextDataLoaders.from_df(df, path=a.encoder_dir, text_col="text", label_col="label",
                              valid_col="is_valid", text_vocab=vocab, bs=64, seq_len=72)
config = dict(awd_lstm_clas_config, emb_sz=a.emb, n_hid=a.hid, n_layers=a.layers)
learn = text_classifier_learner(dls, AWD_LSTM, config=config, pretrained=False, drop_mult=0.5,
                                metrics=accuracy)
if a.encoder:
    learn.load_encoder(a.encoder)
learn.freeze()
t0 = time.perf_counter()
stages = [(1, 2e-2, 1, False), (1, 1e-2, 2, True), (1, 5e-3, 3, True), (2, 1e-3, 0, True)]
for epochs, lr, groups, sliced in stages:
    if groups:
        learn.freeze_to(-groups)
    else:
        learn.unfreeze()
    learn.fit_one_cycle(epochs, slice(lr / 2.6**4, lr) if sliced else lr)
    loss, acc = learn.validate()
    print(f"stage ({epochs}, {lr}, {groups or 'all'}): valid loss {loss:.4f}, accuracy {100 * acc:.2f}%")
print(f"{time.perf_counter() - t0:.0f} s")
