"""Records fastai's learning-rate finder for tests/lr_find.rs (run with PyTorch 2.15 + fastai 2.8.12:
`python3 tests/vectors/make_lr_find.py`). Not part of awd's build or tests: its output is committed.

lr_find.json holds curves, each: the learning rates and smoothed losses fastai's `Recorder` kept during
a sweep (before `lr_find` trims them), and what fastai's `lr_find` then suggests with each of `valley`,
`slide`, `minimum` and `steep` (the rate, and the point it marks on the plot).
- Two real sweeps: `learn.lr_find()` on a small fastai model (a linear regression, and a small
  classifier on random features), with `stop_div` ending them where the smoothed loss passes 4x its minimum.
- Synthetic curves of the usual shape (flat, a valley, a blow-up) with noise, of several lengths, the
  smoothed loss run through fastai's own `AvgSmoothLoss` arithmetic (torch.lerp, beta 0.98).
"""
import json
import math

import numpy as np
import torch
from fastai.callback.schedule import minimum, slide, steep, valley
from fastai.learner import Learner
from fastai.data.core import DataLoaders
from fastai.torch_core import tensor
from torch import nn
from torch.utils.data import TensorDataset

FUNCS = {"valley": valley, "slide": slide, "minimum": minimum, "steep": steep}


def suggest(lrs, losses, num_it):
    """What `Learner.lr_find` computes from the recorder's lists (fastai 2.8.12, callback/schedule.py)."""
    lrs, losses = tensor(lrs[num_it // 10:-5]), tensor(losses[num_it // 10:-5])
    nan_idxs = torch.nonzero(torch.isnan(losses.view(-1)))
    if len(nan_idxs) > 0:
        drop_idx = min(nan_idxs)
        lrs, losses = lrs[:drop_idx], losses[:drop_idx]
    out = {}
    for name, f in FUNCS.items():
        try:
            lr, (x, y) = f(lrs, losses, num_it)
            out[name] = {"lr": float(lr), "point": [float(x), float(y)]}
        except (IndexError, RuntimeError) as e:  # too short a curve for this rule
            out[name] = None
    return out


def real_sweep(make, seed, num_it=100):
    torch.manual_seed(seed)
    learn = make()
    learn.lr_find(num_it=num_it, show_plot=False)
    rec = learn.recorder
    lrs = [float(x) for x in rec.lrs]
    losses = [float(x) for x in rec.losses]
    return {"name": f"fastai sweep, seed {seed}", "num_it": num_it, "lrs": lrs, "losses": losses,
            "suggestions": suggest(lrs, losses, num_it)}


def regression():
    x = torch.randn(512, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(512, 1)
    dls = DataLoaders.from_dsets(TensorDataset(x, y), TensorDataset(x[:64], y[:64]), bs=16)
    return Learner(dls, nn.Linear(8, 1), loss_func=nn.MSELoss(), path="/tmp/awd-lr-find")


def classifier():
    x = torch.randn(1024, 16)
    y = (x[:, :3].sum(1) > 0).long()
    dls = DataLoaders.from_dsets(TensorDataset(x, y), TensorDataset(x[:64], y[:64]), bs=32)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
    return Learner(dls, model, loss_func=nn.CrossEntropyLoss(), path="/tmp/awd-lr-find")


def synthetic(seed, n, num_it):
    """A raw loss curve over an exponential sweep, smoothed as fastai's AvgSmoothLoss does, cut where
    fastai's `stop_div` would cut it."""
    rng = np.random.default_rng(seed)
    lrs = [1e-7 * (10 / 1e-7) ** (i / num_it) for i in range(n)]
    depth, where, width = rng.uniform(0.5, 3), rng.uniform(-4, -1), rng.uniform(0.5, 1.5)
    val, count, best, losses, out_lrs = torch.tensor(0.0), 0, math.inf, [], []
    for lr in lrs:
        u = math.log10(lr)
        raw = 3 - depth / (1 + math.exp(-(u - where + 2) / width)) + math.exp(2.5 * (u - where)) * 0.2
        raw += rng.normal(0, 0.05)
        count += 1
        val = torch.lerp(torch.tensor(raw, dtype=torch.float32), val, 0.98)
        smooth = float(val / (1 - 0.98 ** count))
        out_lrs.append(lr)
        losses.append(smooth)
        best = min(best, smooth)
        if smooth > 4 * best:
            break
    return {"name": f"synthetic {seed}", "num_it": num_it, "lrs": out_lrs, "losses": losses,
            "suggestions": suggest(out_lrs, losses, num_it)}


curves = [real_sweep(regression, 0), real_sweep(classifier, 1)]
curves += [synthetic(seed, n, num_it) for seed, n, num_it in
           [(2, 100, 100), (3, 100, 100), (4, 100, 100), (5, 60, 100), (6, 200, 200), (7, 100, 100)]]
here = __file__.rsplit("/", 1)[0]
json.dump({"curves": curves}, open(f"{here}/lr_find.json", "w"), indent=0)
for c in curves:
    print(c["name"], len(c["lrs"]), {k: (v and round(v["lr"], 9)) for k, v in c["suggestions"].items()})
