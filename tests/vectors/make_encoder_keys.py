"""Records the state dict fastai's `save_encoder` writes (`get_model(learn.model)[0].state_dict()`)
for a small AWD-LSTM, for tests/fastai_artifacts.rs (run with fastai 2.8.12:
`python3 tests/vectors/make_encoder_keys.py`). Not part of awd's build or tests.
"""
import json

from fastai.text.models.awdlstm import AWD_LSTM

config = {"vocab_sz": 11, "emb_sz": 4, "n_hid": 6, "n_layers": 2}
enc = AWD_LSTM(**config, pad_token=1)
here = __file__.rsplit("/", 1)[0]
json.dump({"config": config, "tensors": {k: list(v.shape) for k, v in enc.state_dict().items()}},
          open(f"{here}/encoder_keys.json", "w"), indent=1)
