"""awd from Python: fastai's text tokenization, many times faster, in your own pipelines, and
AWD-LSTM language models and ULMFiT classifiers (awd's files, fastai's ``export.pkl`` and
``.pth``) loaded and run without PyTorch.

Every call into awd releases the GIL and uses every core. awd's errors arrive as
``FileNotFoundError`` or ``ValueError`` with awd's message.
"""

from __future__ import annotations

import gc
import os
import pickle
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from . import _awd

__all__ = [
    "tokenize",
    "tokenize_df",
    "tokenize_files",
    "SpacyTokenizer",
    "load",
    "Classifier",
    "LanguageModel",
    "train_lm",
    "train_classifier",
]

FLD = "xxfld"


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """fastai's default tokenization of each text (its rules, then spaCy's English tokenizer):
    what fastai's ``Tokenizer(SpacyTokenizer())`` gives, token for token."""
    with _no_gc():
        return _awd.tokenize(_strings(texts, "texts"))


def tokenize_df(df, text_cols, mark_fields: Optional[bool] = None, tok_text_col: str = "text"):
    """fastai's ``tokenize_df``: ``(frame, counter)``, the frame without ``text_cols`` and with
    ``tok_text_col`` (the token lists) and ``{tok_text_col}_length``, as fastai returns them."""
    cols = [df.columns[c] if isinstance(c, int) else c for c in _as_list(text_cols)]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"the frame has no column {missing[0]!r} (it has {list(df.columns)})")
    if mark_fields is None:
        mark_fields = len(cols) > 1
    texts = _join_texts(df[cols], mark_fields)
    with _no_gc():
        outputs, counts = _awd.tokenize_counted(texts)
    res = df[df.columns[~df.columns.isin(cols)]].copy()
    res[tok_text_col] = outputs
    res[f"{tok_text_col}_length"] = [len(o) for o in outputs]
    return res, Counter(counts)


def tokenize_files(files, path, output_dir, output_names=None, encoding: str = "utf8",
                   batch: int = 1000) -> Path:
    """fastai's ``tokenize_files``: each file's tokens written space-separated under
    ``output_dir`` (same relative names), with ``lengths.pkl`` and ``counter.pkl``; ``batch``
    files are held in memory at a time."""
    path, output_dir = Path(path), Path(output_dir)
    files = [Path(f) for f in files]
    if output_names is None:
        output_names = [f.relative_to(path) for f in files]
    output_dir.mkdir(parents=True, exist_ok=True)
    lengths, counter = {}, Counter()
    for start in range(0, len(files), batch):
        chunk = files[start:start + batch]
        texts = [f.read_text(encoding=encoding) for f in chunk]
        with _no_gc():
            outputs, counts = _awd.tokenize_counted(texts)
        for f, name, toks in zip(chunk, output_names[start:start + batch], outputs):
            out = output_dir / name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(" ".join(toks), encoding=encoding)
            lengths[str(f.relative_to(path))] = len(toks)
        counter.update(counts)
    with open(output_dir / "lengths.pkl", "wb") as fh:
        pickle.dump(lengths, fh)
    with open(output_dir / "counter.pkl", "wb") as fh:
        pickle.dump(counter, fh)
    return output_dir


class SpacyTokenizer:
    """A drop-in for fastai's ``SpacyTokenizer``: give it to fastai as ``tok`` (``Tokenizer(tok=...)``,
    ``TextBlock.from_df(..., tok=...)``, ``tokenize_df(..., tok=...)``); fastai applies its rules,
    awd splits the texts as spaCy's English tokenizer would, with fastai's special tokens."""

    def __init__(self, lang: str = "en", special_toks=None, buf_sz: int = 5000):
        if lang != "en":
            raise ValueError(f"awd tokenizes English, not {lang!r}")
        self.lang, self.buf_sz = lang, buf_sz
        self.special_toks = special_toks

    def __call__(self, items: Iterable[str]) -> Iterator[list[str]]:
        items = [str(t) for t in items]
        for start in range(0, len(items), self.buf_sz):
            with _no_gc():
                tokens = _awd.split(items[start:start + self.buf_sz])
            yield from tokens


class Classifier:
    """A text classifier: ``predict(texts) -> (labels, probabilities)``."""

    def __init__(self, model):
        self._m = model

    classes = property(lambda self: self._m.classes, doc="The class names, in the probabilities' order.")
    vocab = property(lambda self: self._m.vocab, doc="The vocabulary, id by id.")
    sizes = property(lambda self: self._m.sizes, doc="(vocabulary, embedding, hidden, layers).")
    multi_label = property(lambda self: self._m.multi_label)

    def predict(self, texts: Sequence[str], batch_size: int = 64):
        """Each text's label (multi-label: the list of labels over the threshold) and a NumPy
        array ``[len(texts), len(classes)]`` of probabilities; a text's probabilities do not
        depend on its batch-mates."""
        import numpy as np

        labels, probs = self._m.predict(_strings(texts, "texts"), batch_size)
        if not self._m.multi_label:
            labels = [l[0] for l in labels]
        return labels, np.asarray(probs, dtype=np.float32).reshape(len(labels), len(self.classes))


class LanguageModel:
    """An AWD-LSTM language model: ``score(texts)`` and ``generate(prompt, ...)``."""

    def __init__(self, model):
        self._m = model

    vocab = property(lambda self: self._m.vocab, doc="The vocabulary, id by id.")
    sizes = property(lambda self: self._m.sizes, doc="(vocabulary, embedding, hidden, layers).")

    def score(self, texts: Sequence[str]) -> list[dict]:
        """Per text: its ``tokens``, each token's ``logprobs`` given the ones before (from the
        second token on), and its ``perplexity``."""
        return [{"tokens": t, "logprobs": l, "perplexity": p}
                for t, l, p in self._m.score(_strings(texts, "texts"))]

    def generate(self, prompt: str = "", tokens: int = 50, temperature: float = 1.0,
                 top_k: int = 0, seed: int = 0) -> list[str]:
        """``tokens`` tokens continuing ``prompt``; the same seed gives the same tokens."""
        return self._m.generate(prompt, tokens, temperature, top_k, seed)


def load(path, vocab=None, classes: Sequence[str] = (), precision: str = "f32"):
    """Any model awd reads: an awd run directory or model file, fastai's ``export.pkl``, or a
    fastai ``.pth`` with its vocabulary pickle (``vocab``; ``classes`` for a classifier).
    Returns a ``Classifier`` or a ``LanguageModel``."""
    m = _awd.load_model(os.fspath(path), None if vocab is None else os.fspath(vocab),
                        list(classes), precision)
    return Classifier(m) if m.kind == "classifier" else LanguageModel(m)


def train_lm(out, data=None, *, pretrained=None, pretrained_vocab=None, config=None,
             resume: bool = False, overwrite: bool = False, progress: bool = True, **options) -> dict:
    """``awd train``: trains (``resume=True``: continues) a language model in ``out`` on ``data``
    (a text file, a directory, a CSV; none: awd's grammar corpus), fine-tuning ``pretrained`` if
    given. ``options`` are ``awd train``'s flags, underscored: ``preset="finetune"``,
    ``epochs=2``, ``lr=1e-3``, ``dataset="wikitext-2"``, ...; an unknown one is a ``ValueError``.
    Ctrl-C stops after the current step with a checkpoint (``resume=True`` goes on from it).
    Returns the run's ``steps``, ``valid_loss``, ``valid_perplexity``, ``test_perplexity``,
    ``tokens_per_s`` and the paths of its ``model``, ``metrics`` and ``plot``."""
    return _awd.train_lm(os.fspath(out), _argv(options), _path(data), _path(pretrained),
                         _path(pretrained_vocab), _path(config), resume, overwrite, progress)


def train_classifier(out, data, *, encoder=None, vocab=None, config=None, stages=None,
                     backwards: bool = False, resume: bool = False, overwrite: bool = False,
                     progress: bool = True, **options) -> dict:
    """``awd classify train``: trains (``resume=True``: continues) a classifier in ``out`` on the
    labelled documents ``data`` (a CSV, or class folders), from ``encoder`` (a fine-tuning run, an
    awd model file, or fastai's ``.pth`` with ``vocab``). ``stages``: fastai's gradual unfreezing,
    ``"1:2e-2:1,1:1e-2:2"`` or ``[(epochs, lr, groups), ...]``; ``options`` are the command's
    other flags, underscored (``batch_size=32``, ``text_col="review"``, ...). Returns ``steps``,
    ``valid_accuracy``, ``valid_loss``, ``tokens_per_s`` and the paths of its ``model``,
    ``fastai_model`` (fastai's ``.pth``) and ``metrics``."""
    if stages is not None:
        options["stages"] = stages if isinstance(stages, str) else ",".join(
            ":".join(str(x) for x in stage) for stage in stages)
    return _awd.train_classifier(os.fspath(out), os.fspath(data), _argv(options), _path(encoder),
                                 _path(vocab), _path(config), backwards, resume, overwrite, progress)


def _argv(options: dict) -> list[str]:
    """Keyword options as the command line's flags: ``lr_low=1e-3`` -> ``--lr-low 0.001``."""
    argv = []
    for name, value in options.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        argv += ["--" + name.replace("_", "-"), os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
    return argv


def _path(p):
    return None if p is None else os.fspath(p)


@contextmanager
def _no_gc():
    """Python's cyclic collector paused while awd hands over its lists: building tens of
    thousands of lists would otherwise run it again and again over objects that hold no cycle."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _strings(texts, name):
    if isinstance(texts, str):
        raise ValueError(f"{name}: a list of texts, not one string")
    out = list(texts)
    bad = next((i for i, t in enumerate(out) if not isinstance(t, str)), None)
    if bad is not None:
        raise ValueError(f"{name}[{bad}]: a str, not {type(out[bad]).__name__}")
    return out


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _join_texts(df, mark_fields):
    """fastai's ``_join_texts``: a row's text columns joined, each marked ``xxfld i``."""
    col = (f"{FLD} 1 " if mark_fields else "") + df.iloc[:, 0].astype(str)
    for i in range(1, len(df.columns)):
        col += (f" {FLD} {i + 1} " if mark_fields else " ") + df.iloc[:, i].astype(str)
    return list(col.values)
