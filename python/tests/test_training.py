"""Training from Python: awd's training jobs with the command line's options, Ctrl-C with a
checkpoint, and errors as exceptions. Small models, a few seconds each."""

import os
import re
import signal
import threading
import time

import pytest

import awd


def reviews(path, n=48):
    rows = "".join(f"{['neg', 'pos'][i % 2]},{['an awful dull', 'a great moving'][i % 2]} film {i}\n"
                   for i in range(n))
    path.write_text("label,text\n" + rows)
    return path


def test_a_language_model_trains_and_loads(tmp_path):
    r = awd.train_lm(tmp_path / "lm", max_steps=4, progress=False)
    assert r["steps"] == 4
    assert r["valid_perplexity"] == pytest.approx(2.718281828 ** r["valid_loss"], rel=1e-9)
    lm = awd.load(r["model"])
    assert isinstance(lm, awd.LanguageModel) and lm.sizes[1:] == (32, 64, 2)
    [s] = lm.score(["the old"])
    assert len(s["logprobs"]) == len(s["tokens"]) - 1


def test_options_are_the_command_lines(tmp_path):
    r = awd.train_lm(tmp_path / "lm", max_steps=2, emb_size=16, hidden_size=24, n_layers=1,
                     precision="f32", variable_bptt=False, progress=False)
    assert awd.load(r["model"]).sizes[1:] == (16, 24, 1)
    with pytest.raises(ValueError, match="--epochs-x"):
        awd.train_lm(tmp_path / "a", epochs_x=3)
    with pytest.raises(ValueError, match="invalid value 'many' for '--epochs"):
        awd.train_lm(tmp_path / "b", epochs="many")
    with pytest.raises(ValueError, match="--preset"):
        awd.train_lm(tmp_path / "c", preset="huge")
    assert not (tmp_path / "a").exists()


def test_a_run_is_not_overwritten_unless_asked(tmp_path):
    awd.train_lm(tmp_path / "lm", max_steps=1, progress=False)
    with pytest.raises(ValueError, match="lm"):
        awd.train_lm(tmp_path / "lm", max_steps=1, progress=False)
    assert awd.train_lm(tmp_path / "lm", max_steps=1, overwrite=True, progress=False)["steps"] == 1


def test_ctrl_c_stops_at_a_step_with_a_checkpoint_and_resume_finishes(tmp_path):
    out = tmp_path / "lm"
    state = out / "train-state.safetensors"

    def interrupt_once_checkpointed():
        # The run writes its first checkpoint at the end of its first epoch: then Ctrl-C.
        deadline = time.monotonic() + 120
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    # Python's own Ctrl-C handler, even where the runner was started with SIGINT ignored (a
    # background job of a non-interactive shell), so that the kill below raises.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    t = threading.Thread(target=interrupt_once_checkpointed)
    t.start()
    with pytest.raises(KeyboardInterrupt, match="checkpoint") as e:
        awd.train_lm(out, epochs=4, grammar_tokens=40000, progress=False)
    t.join()
    signal.signal(signal.SIGINT, previous)
    step = int(re.search(r"step (\d+)", str(e.value)).group(1))
    r = awd.train_lm(out, resume=True, progress=False)
    assert r["steps"] > step
    assert os.path.exists(r["model"])


def test_a_classifier_trains_and_predicts(tmp_path):
    data = reviews(tmp_path / "docs.csv")
    r = awd.train_classifier(tmp_path / "clas", data, stages=[(1, 1e-2, 0)], batch_size=8,
                             emb_size=8, hidden_size=16, n_layers=1, progress=False)
    assert r["steps"] > 0 and 0.0 <= r["valid_accuracy"] <= 1.0
    assert os.path.exists(r["fastai_model"])
    clas = awd.load(r["model"])
    assert isinstance(clas, awd.Classifier) and clas.classes == ["neg", "pos"]
    labels, probs = clas.predict(["a great moving film 99", "an awful dull film 98"])
    assert probs.shape == (2, 2) and set(labels) <= {"neg", "pos"}


def test_classifier_errors_are_exceptions(tmp_path):
    with pytest.raises(FileNotFoundError):
        awd.train_classifier(tmp_path / "x", tmp_path / "missing.csv", progress=False)
    data = reviews(tmp_path / "docs.csv")
    with pytest.raises(ValueError, match="--stages"):
        awd.train_classifier(tmp_path / "y", data, stages="one", progress=False)
    with pytest.raises(ValueError, match="column"):
        awd.train_classifier(tmp_path / "z", data, label_col="sentiment", progress=False)
