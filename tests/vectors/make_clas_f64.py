"""Issue 23, item 9: is awd's difference from fastai on a front-padded classifier batch rounding?

Runs the shared generator (`../shared/testdata/fastai_clas/make_clas_vectors.py`, PyTorch 2.15 +
fastai 2.8.12) for 2 layers, a head of [9, 6], 5 classes and 5 documents of 17, 13, 13, 9 and 5 tokens
(bptt 4, max_len 12), then replays each train case in float64 — the same weights, inputs and every
recorded mask — and writes the float64 logits, loss and gradients beside fastai's float32 ones
(`vectors64.safetensors`). Not part of awd's build or tests: its outputs are committed
(tests/vectors/clas_rounding/, read by tests/classifier.rs).

    python3 tests/vectors/make_clas_f64.py ../shared/testdata/fastai_clas/make_clas_vectors.py tests/vectors/clas_rounding
"""
import os, runpy, sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

generator, out = sys.argv[1], sys.argv[2]
seed = sys.argv[3] if len(sys.argv) > 3 else "4"
sys.argv = [generator, out, seed, "60", "12", "16", "2", "4", "12", "5", "9,6", "5", "17,13,13,9,5"]
g = runpy.run_path(generator, run_name="__main__")
model, state0, vec, awd, orig_dropout = g["model"], g["state0"], g["vec"], g["awd"], g["orig_dropout"]
os.remove(os.path.join(out, "fastai_clas.pth"))  # the safetensors copy holds the same tensors


def relative(a32, a64):
    a32, a64 = a32.double(), a64.double()
    return float(((a32 - a64).abs() / (a64.abs() + a64.abs().max() + 1e-30)).max())


vec64, worst = {}, {}
for kind in ("same", "padded"):
    p = f"{kind}.train."
    masks = iter([vec[k] for k in sorted(k for k in vec if k.startswith(p + "mask."))])
    awd.dropout_mask = lambda x, sz, pr: next(masks).double()

    def replay(w, p=0.5, training=True, inplace=False):
        if not training or p == 0:
            return orig_dropout(w, p, training, inplace)
        return w * next(masks).double()

    awd.F.dropout = replay
    model.load_state_dict(state0)
    model.double().train()
    model.zero_grad()
    logits = model(vec[p + "x"].long())[0]
    loss = F.cross_entropy(logits, vec[p + "y"].long())
    loss.backward()
    vec64[p + "logits"], vec64[p + "loss"] = logits.detach(), loss.detach().reshape(1)
    for k, prm in model.named_parameters():
        if prm.grad is not None:
            vec64[p + "grad." + k] = prm.grad.detach()
    for k, v in vec64.items():
        if k.startswith(p):
            worst[k] = relative(vec[k], v)
    model.float()
save_file({k: v.contiguous() for k, v in vec64.items()}, os.path.join(out, "vectors64.safetensors"))
print("fastai float32 against float64, |diff| / (|x| + max|x|):")
for k, v in sorted(worst.items(), key=lambda kv: -kv[1])[:6]:
    print(f"  {k}: {v:.2e}")
