"""The Python package against fastai's recorded outputs and awd's command line (no PyTorch here).

Run from the repository (after `pip install .`): `pytest python/tests`."""

import json
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import awd

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "testdata"
EXPORT = SHARED / "fastai_export"
RECORDED = json.loads((ROOT / "tests" / "vectors" / "tokenize_df.json").read_text())


def frame():
    return pd.DataFrame({
        "label": ["pos", "neg", "pos", "neg"],
        "title": ["GREAT film", "Meh.", "A  classic!!!", "worst...   ever"],
        "text": ["I loved it -- truly <br />loved it.", "It's not   good, it's BAD BAD BAD.",
                 "Watch it\n\ntwice; it's $5 at the U.S. store.", "no no no no no! \u00e9t\u00e9 caf\u00e9"],
    })


def test_tokens_are_fastais_on_every_recorded_text():
    rows = [json.loads(l) for l in (SHARED / "ulmfit" / "tokens.jsonl").read_text().splitlines()]
    got = awd.tokenize([r["text"] for r in rows])
    assert got == [r["tokens"] for r in rows]


@pytest.mark.parametrize("case,cols", [("one", ["text"]), ("two", ["title", "text"])])
def test_tokenize_df_gives_fastais_frame_and_counter(case, cols):
    want = RECORDED[case]
    res, counter = awd.tokenize_df(frame(), cols)
    assert list(res.columns) == want["columns"]
    assert [list(t) for t in res["text"]] == want["tokens"]
    assert list(res["text_length"]) == want["lengths"]
    assert list(res["label"]) == want["label"]
    assert counter == Counter(want["counter"])


def test_the_drop_in_splits_rule_processed_text_as_fastais_spacy_tokenizer():
    tok = awd.SpacyTokenizer()
    assert list(tok(RECORDED["split"]["ruled"])) == RECORDED["split"]["tokens"]


def test_tokenize_files_writes_fastais_files(tmp_path):
    import pickle
    src = tmp_path / "docs"
    (src / "a").mkdir(parents=True)
    texts = {"a/one.txt": "Hello WORLD, again!", "two.txt": "It's   fine.\n"}
    for name, t in texts.items():
        (src / name).write_text(t)
    files = [src / n for n in texts]
    out = awd.tokenize_files(files, src, tmp_path / "tok", batch=1)
    want = awd.tokenize(list(texts.values()))
    for (name, _), toks in zip(texts.items(), want):
        assert (out / name).read_text() == " ".join(toks)
    lengths = pickle.loads((out / "lengths.pkl").read_bytes())
    assert lengths == {n: len(t) for n, t in zip(texts, want)}
    assert pickle.loads((out / "counter.pkl").read_bytes()) == Counter(t for ts in want for t in ts)


def test_an_exported_classifier_predicts_as_fastai_and_as_the_command_line():
    probes = [json.loads(l) for l in (EXPORT / "probes.jsonl").read_text().splitlines()]
    texts = [p["text"] for p in probes]
    clas = awd.load(EXPORT / "export.pkl")
    assert isinstance(clas, awd.Classifier) and clas.classes == ["negative", "positive"]
    labels, probs = clas.predict(texts)
    assert probs.shape == (len(texts), 2) and probs.dtype == np.float32
    assert labels == [p["label"] for p in probes]
    np.testing.assert_allclose(probs, [p["probs"] for p in probes], atol=1e-4)
    cli = ROOT / "target" / "release" / "awd"
    lines = "\n".join(json.dumps({"text": t}) for t in texts)
    run = subprocess.run([str(cli), "classify", "predict", "--model", str(EXPORT / "export.pkl"), "--json"],
                         input=lines, capture_output=True, text=True, check=True)
    cli_probs = [list(json.loads(l)["probabilities"].values()) for l in run.stdout.splitlines()]
    np.testing.assert_allclose(probs, cli_probs, atol=1e-6)
    _, one = clas.predict(texts[:1])
    np.testing.assert_allclose(one[0], probs[0], atol=1e-6)


def test_an_exported_language_model_scores_and_generates():
    lm = awd.load(EXPORT / "lm_export.pkl")
    assert isinstance(lm, awd.LanguageModel)
    [s] = lm.score(["The film is good"])
    assert s["tokens"][0] == "xxbos" and len(s["logprobs"]) == len(s["tokens"]) - 1
    assert s["perplexity"] >= 1.0
    a = lm.generate("The film is", tokens=8, seed=3)
    assert len(a) == 8 and a == lm.generate("The film is", tokens=8, seed=3)


def test_a_fastai_pth_loads_with_its_vocabulary():
    u = SHARED / "ulmfit"
    lm = awd.load(u / "lm.pth", vocab=u / "itos.pkl")
    assert isinstance(lm, awd.LanguageModel)
    assert lm.vocab[:3] == ["xxunk", "xxpad", "xxbos"] and lm.sizes[0] == len(lm.vocab)
    [s] = lm.score(["The film is good"])
    mean = -sum(s["logprobs"]) / len(s["logprobs"])
    assert s["perplexity"] == pytest.approx(np.exp(mean), rel=1e-6)


def test_bad_input_is_a_python_exception_with_awds_message(tmp_path):
    with pytest.raises(FileNotFoundError):
        awd.load(tmp_path / "nothing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_text("not a model")
    with pytest.raises(ValueError, match="junk.safetensors"):
        awd.load(junk)
    with pytest.raises(ValueError, match="a list of texts"):
        awd.tokenize("one string")
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        awd.tokenize(["fine", 3])
    with pytest.raises(ValueError, match="no column 'body'"):
        awd.tokenize_df(frame(), ["body"])
    lm = awd.load(EXPORT / "lm_export.pkl")
    with pytest.raises(ValueError, match="temperature"):
        lm.generate("x", temperature=0.0)
    with pytest.raises(ValueError, match="precision"):
        awd.load(EXPORT / "export.pkl", precision="f16")


def test_the_gil_is_released_while_awd_works():
    texts = ["A fairly long review, with words, and more words! " * 40] * 3000
    ticks, done = [0], threading.Event()

    def count():
        while not done.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    time.sleep(0.05)
    start_ticks, start = ticks[0], time.perf_counter()
    awd.tokenize(texts)
    elapsed, during = time.perf_counter() - start, ticks[0] - start_ticks
    done.set()
    t.join()
    assert elapsed > 0.05, "the work was too short to tell"
    # Holding the GIL, the other thread could not tick at all while awd worked; released, it
    # ticks (less often than every millisecond: awd's threads keep the cores busy).
    assert during >= max(5, 0.05 * elapsed / 0.001), (during, elapsed)


def _tokenize_in_child(texts):
    return awd.tokenize(texts)


def test_a_forked_child_tokenizes_after_the_parent_did():
    # fastai's tokenize_df forks its workers from a process that may have used awd already.
    import multiprocessing
    texts = ["Hello WORLD, again!"] * 50
    want = awd.tokenize(texts)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_tokenize_in_child, (texts,)).get(timeout=120) == want
