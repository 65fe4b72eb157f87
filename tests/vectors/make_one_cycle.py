"""Records fastai's `fit_one_cycle` schedules for tests/data.rs (run with fastai 2.8.12:
`python3 tests/vectors/make_one_cycle.py`): the learning rate and momentum fastai's
`ParamScheduler` sets before each of 37 training batches (pos = i/37), for lr_max 2e-3 and the
defaults (div 25, div_final 1e5, pct_start 0.25) with the text learners' moms (0.8, 0.7, 0.8).
Not part of awd's build or tests: its output is committed.
"""
import json

from fastai.callback.schedule import combined_cos

lr_max, n = 2e-3, 37
lr = combined_cos(0.25, lr_max / 25., lr_max, lr_max / 1e5)
mom = combined_cos(0.25, 0.8, 0.7, 0.8)
here = __file__.rsplit("/", 1)[0]
json.dump({"lr_max": lr_max, "steps": n, "moms": [0.8, 0.7, 0.8],
           "lr": [float(lr(i / n)) for i in range(n)], "mom": [float(mom(i / n)) for i in range(n)]},
          open(f"{here}/one_cycle.json", "w"))
