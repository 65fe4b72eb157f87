"""Records fastai's loss of the shared pretrained model on known tokens, for tests/ulmfit.rs
(run with PyTorch 2.15 + fastai 2.8.12: `python3 tests/vectors/make_ulmfit_eval.py ../shared/testdata/ulmfit`).

ulmfit_eval.json: three documents of tokens.jsonl as text lines (tokens joined by spaces), the
token stream awd reads from such a file (each line's tokens, then `<eos>`, unknown to a fastai
vocabulary), fastai's model in eval mode over it in one row and windows of 70 with the state
carried, its mean cross-entropy, and the sha256 of the weights it was recorded with.
Not part of awd's build or tests: its output is committed.
"""
import hashlib, json, pickle, sys

import torch
import torch.nn.functional as F
from fastai.text.models.awdlstm import AWD_LSTM, awd_lstm_lm_config
from fastai.text.models.core import get_language_model

d = sys.argv[1]
meta = json.load(open(f"{d}/meta.json"))
itos = pickle.load(open(f"{d}/itos.pkl", "rb"))
o2i = {t: i for i, t in enumerate(itos) if t != "xxfake"}
docs = [json.loads(l)["tokens"] for l in open(f"{d}/tokens.jsonl")][1:4]
lines = [" ".join(t) for t in docs]
# As awd reads a text file at word level: each physical line's tokens, then `<eos>`.
text = "\n".join(lines) + "\n"
stream = [o2i.get(t, 0) for line in text.split("\n")[:-1] for t in line.split() + ["<eos>"]]
c = meta["config"]
config = dict(awd_lstm_lm_config, emb_sz=c["emb_sz"], n_hid=c["n_hid"], n_layers=c["n_layers"])
model = get_language_model(AWD_LSTM, len(itos), config=config)
model.load_state_dict(torch.load(f"{d}/lm.pth", map_location="cpu"))
model.eval()
model.reset()
ids = torch.tensor(stream)[None]
total, count, bptt = 0.0, 0, 70
with torch.no_grad():
    i = 0
    while i < ids.shape[1] - 1:
        seq = min(bptt, ids.shape[1] - 1 - i)
        out = model(ids[:, i:i + seq])[0]
        total += F.cross_entropy(out.reshape(-1, out.shape[-1]), ids[:, i + 1:i + 1 + seq].reshape(-1), reduction="sum").item()
        count += seq
        i += seq
sha = hashlib.sha256(open(f"{d}/lm.pth", "rb").read()).hexdigest()
here = __file__.rsplit("/", 1)[0]
json.dump({"lines": lines, "batch": 1, "bptt": bptt, "tokens": len(stream), "loss": total / count,
           "lm_sha256": sha}, open(f"{here}/ulmfit_eval.json", "w"), ensure_ascii=False)
print(len(stream), total / count)
