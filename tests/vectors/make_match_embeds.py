"""Records fastai's `match_embeds` for tests/fastai_artifacts.rs (run with fastai 2.8.12:
`python3 tests/vectors/make_match_embeds.py`): a small pretrained state dict (encoder, its
dropout copy, tied decoder, decoder bias) with its vocabulary, a new vocabulary with tokens the
old one lacks (and `xxfake` padding, which fastai maps to the old vocabulary's last `xxfake`),
and what fastai makes of the embedding rows and the bias.
Not part of awd's build or tests: its output is committed.
"""
import json

import torch
from fastai.text.learner import match_embeds

torch.manual_seed(0)
old = ["xxunk", "xxpad", "xxbos", "xxeos", "the", "cat", "sat", "xxfake"]
new = ["xxunk", "xxpad", "xxbos", "xxeos", "dog", "the", "sat", "mat", "on", "xxfake", "xxfake", "xxfake"]
emb = torch.randn(len(old), 3)
bias = torch.randn(len(old))
wgts = {"0.encoder.weight": emb.clone(), "0.encoder_dp.emb.weight": emb.clone(),
        "1.decoder.weight": emb.clone(), "1.decoder.bias": bias.clone()}
out = match_embeds(wgts, old, new)
here = __file__.rsplit("/", 1)[0]
json.dump({"old_vocab": old, "new_vocab": new, "old_emb": emb.tolist(), "old_bias": bias.tolist(),
           "new_emb": out["0.encoder.weight"].tolist(), "new_bias": out["1.decoder.bias"].tolist(),
           "keys": sorted(out.keys())},
          open(f"{here}/match_embeds.json", "w"))
