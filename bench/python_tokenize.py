"""fastai's `tokenize_df` three ways on every text in ../shared/data, side by side on this machine,
each in a process of its own (time and peak RSS): fastai with spaCy, fastai with awd's drop-in
`tok` (fastai's Python rules remain), and `awd.tokenize_df`. The tokens must be identical.

usage: python bench/python_tokenize.py [DATA_DIR]   (a Python with fastai and awd installed;
ROUNDS=N, default 3: each mode's median of N fresh processes)
"""
import json, os, subprocess, sys

DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")

CHILD = r"""
import hashlib, json, os, sys, time, warnings
warnings.simplefilter("ignore")
import pandas as pd
mode, data = sys.argv[1], sys.argv[2]
texts = []
for name in sorted(os.listdir(data)):
    p = os.path.join(data, name)
    if name.endswith(".csv"):
        texts += [str(t) for t in pd.read_csv(p)["text"]]
    elif name.endswith(".txt"):
        texts += [l for l in open(p, encoding="utf8").read().split("\n") if l.strip()]
df = pd.DataFrame({"text": texts})
# The imports (PyTorch's with fastai's) are not timed: only the call is.
import awd
if mode != "awd":
    from fastai.text.core import tokenize_df
start = time.perf_counter()
if mode == "awd":
    res, counter = awd.tokenize_df(df, ["text"])
else:
    tok = awd.SpacyTokenizer() if mode == "dropin" else None
    res, counter = tokenize_df(df, ["text"], tok=tok)
elapsed = time.perf_counter() - start
digest = hashlib.sha256(json.dumps([list(t) for t in res["text"]]).encode()).hexdigest()
print(json.dumps({"seconds": elapsed, "texts": len(texts), "tokens": int(sum(counter.values())), "digest": digest}))
"""


def run(mode):
    """One mode in a child process: its result and its own peak RSS (from wait4)."""
    p = subprocess.Popen([sys.executable, "-c", CHILD, mode, DATA], stdout=subprocess.PIPE, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f"{mode} failed")
    r = json.loads(out)
    r["peak_rss_mb"] = usage.ru_maxrss / 1024
    return r


# Rounds alternate the modes, each in a fresh process; the table gives each mode's median.
ROUNDS = int(os.environ.get("ROUNDS", "3"))
runs = {mode: [] for mode in ["fastai", "dropin", "awd"]}
for _ in range(ROUNDS):
    for mode in runs:
        runs[mode].append(run(mode))
results = {mode: sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2] for mode, rs in runs.items()}
for mode, rs in runs.items():
    print(f"{mode}: " + ", ".join(f"{r['seconds']:.2f}" for r in rs) + " s")
base = results["fastai"]
print(f"{base['texts']} texts, {base['tokens']} tokens (every text in {os.path.abspath(DATA)})")
print("| tokenizer | seconds | speed-up | peak RSS MB | tokens identical |")
print("|---|---|---|---|---|")
for mode, label in [("fastai", "fastai tokenize_df, spaCy"), ("dropin", "fastai tokenize_df, tok=awd.SpacyTokenizer()"), ("awd", "awd.tokenize_df")]:
    r = results[mode]
    print(f"| {label} | {r['seconds']:.2f} | {base['seconds'] / r['seconds']:.1f}x | {r['peak_rss_mb']:.0f} | {r['digest'] == base['digest']} |")
