"""fastai's side of the tokenizer comparison: tokenizes a JSON-lines file ({"text": ...} a line)
with fastai's default tokenization and reports tokens/s, to compare with `awd tokenize --jsonl`
on the same file, on the same machine, back to back.

    python bench/fastai_tokenize.py DOCS.jsonl [--out FASTAI.jsonl] [--workers N]

Two timings: fastai's `Tokenizer` called a text at a time (what `Datasets` does item by item), and
`tokenize_texts(n_workers=N)` (fastai's parallel path, used when DataLoaders are built from a
DataFrame or a folder; default N = the machine's cores). `--out` writes fastai's tokens, in the
format of `awd tokenize --jsonl`, for a side-by-side diff.
"""
import argparse, json, os, time

from fastai.text.core import Tokenizer, WordTokenizer, tokenize_texts

ap = argparse.ArgumentParser()
ap.add_argument("docs")
ap.add_argument("--out")
ap.add_argument("--workers", type=int, default=os.cpu_count())
a = ap.parse_args()
texts = [json.loads(l)["text"] for l in open(a.docs, encoding="utf-8")]

tok = Tokenizer(WordTokenizer())
t0 = time.perf_counter()
toks = [list(tok(t)) for t in texts]
t1 = time.perf_counter()
n = sum(len(t) for t in toks)
print(f"fastai Tokenizer, one process: {len(texts)} docs, {n} tokens in {t1 - t0:.2f} s ({n / (t1 - t0):.0f} tokens/s)")

t0 = time.perf_counter()
par = tokenize_texts(texts, n_workers=a.workers)
t1 = time.perf_counter()
m = sum(len(t) for t in par)
print(f"fastai tokenize_texts, {a.workers} workers: {m} tokens in {t1 - t0:.2f} s ({m / (t1 - t0):.0f} tokens/s)")

if a.out:
    with open(a.out, "w", encoding="utf-8") as f:
        for text, t in zip(texts, toks):
            f.write(json.dumps({"text": text, "tokens": t}, ensure_ascii=False) + "\n")
