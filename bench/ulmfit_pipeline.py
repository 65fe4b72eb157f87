"""ULMFiT end to end, awd beside PyTorch + fastai: the same recipe from the same pretrained LM,
every epoch and job timed, each job a fresh process measured alone (one after the other).

    python bench/ulmfit_pipeline.py PRETRAINED DATA.csv [--awd target/release/awd]
        [--lm-epochs 2] [--final-epochs 2] [--test 2000] [--only awd|fastai] [--work DIR]
        [--precision f32[,auto,bf16]]

PRETRAINED: a fastai AWD-LSTM language model, a directory holding `lm.pth` and `itos.pkl` (as
`../shared/testdata/ulmfit`; its sizes are read from the weights). DATA.csv: `text`, `label` and
`is_valid` columns (as `../shared/data/rotten_tomatoes.csv`). The recipe, fastai's ULMFiT tutorial:
1. LM fine-tuning (drop_mult 0.3, bs 64, seq_len 72): `fit_one_cycle(1, 2e-2)` frozen, then
   `unfreeze()` and `fit_one_cycle(LM_EPOCHS, 2e-3)`;
2. the classifier on the fine-tuned encoder (drop_mult 0.5, bs 64): `fit_one_cycle(1, 2e-2)`,
   `freeze_to(-2)` + `fit_one_cycle(1, slice(1e-2/2.6**4, 1e-2))`, `freeze_to(-3)` + the same at
   5e-3, `unfreeze()` + `fit_one_cycle(FINAL_EPOCHS, slice(1e-3/2.6**4, 1e-3))`;
3. predicting the first TEST held-out (`is_valid`) reviews, batches of 64, tokenization included.
awd runs `awd train --preset finetune`, `awd classify train`, `awd classify predict --json`
with `--precision` (f32 by default, as fastai's; `auto` is bf16 where awd's start-up probe finds
it faster on this CPU; `f32,auto` runs awd's pipeline once with each, a column each).
An epoch's time includes its validation; a job's is the whole process (start-up, tokenization,
loading and saving included). Prints a table of both sides, their ratio, peak RSS and quality.
Set-up: python3 -m venv /tmp/ref && /tmp/ref/bin/pip install torch fastai; run with that Python.
Not part of awd's build or tests.
"""
import argparse, csv, json, os, subprocess, sys, tempfile, time

HERE = os.path.abspath(__file__)


def timed(cmd, **kw):
    """Runs `cmd`, returns (seconds, peak RSS in MB, stdout)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, **kw)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024, out


def epochs_of(metrics):
    """Epoch times and the last validation values from an awd run's metrics.csv."""
    rows = [r for r in csv.DictReader(open(metrics)) if r["val_loss"]]
    times, before = [], 0.0
    for r in rows:
        times.append(float(r["elapsed_s"]) - before)
        before = float(r["elapsed_s"])
    return times, rows[-1]


def share_right(got, labels):
    """The share of predicted labels `got` equal to `labels`."""
    return sum(g == w for g, w in zip(got, labels)) / len(labels)


def run_awd(a, work, precision):
    awd = a.awd
    jobs = {}
    lm, clas = f"{work}/awd-{precision}-lm", f"{work}/awd-{precision}-clas"
    s, rss, _ = timed([awd, "train", "--preset", "finetune", "--pretrained", a.pretrained,
                       "--data", a.data, "--epochs", str(a.lm_epochs), "--out", lm, "--quiet",
                       "--precision", precision])
    times, last = epochs_of(f"{lm}/metrics.csv")
    jobs["lm"] = dict(s=s, rss=rss, epochs=times, quality=f"ppl {float(last['val_ppl']):.2f}")
    stages = f"1:2e-2:1,1:1e-2:2,1:5e-3:3,{a.final_epochs}:1e-3"
    s, rss, out = timed([awd, "classify", "train", "--encoder", lm, "--data", a.data,
                         "--stages", stages, "--out", clas, "--precision", precision])
    times, _ = epochs_of(f"{clas}/metrics.csv")
    acc = out.split("validation accuracy ")[1].split("%")[0]
    jobs["clas"] = dict(s=s, rss=rss, epochs=times, quality=f"accuracy {float(acc) / 100:.4f}")
    texts, labels = test_set(a)
    with open(f"{work}/test.jsonl", "w") as f:
        f.writelines(json.dumps({"text": t}) + "\n" for t in texts)
    s, rss, out = timed([awd, "classify", "predict", "--model", clas, "--json", f"{work}/test.jsonl"])
    got = [json.loads(line)["label"] for line in out.splitlines() if line.strip()]
    jobs["predict"] = dict(s=s, rss=rss, epochs=[], quality=f"accuracy {share_right(got, labels):.4f}")
    return jobs


def run_fastai(a, work, _):
    jobs = {}
    for job in ["lm", "clas", "predict"]:
        s, rss, out = timed([sys.executable, HERE, a.pretrained, a.data, "--fastai-job", job,
                             "--work", work, "--lm-epochs", str(a.lm_epochs),
                             "--final-epochs", str(a.final_epochs), "--test", str(a.test)])
        jobs[job] = dict(s=s, rss=rss, **json.loads(out.strip().splitlines()[-1]))
    return jobs


def test_set(a):
    rows = [r for r in csv.DictReader(open(a.data)) if r["is_valid"].lower() == "true"][: a.test]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def fastai_job(a):
    """One fastai job in this process; its last line of output is JSON (epoch times, quality)."""
    import math, pickle, warnings
    warnings.simplefilter("ignore")
    import pandas as pd
    import torch
    from fastai.callback.core import Callback
    from fastai.text.all import (AWD_LSTM, TextDataLoaders, accuracy, awd_lstm_clas_config,
                                 awd_lstm_lm_config, language_model_learner, load_learner,
                                 text_classifier_learner)
    from fastai.torch_core import set_seed

    class EpochTimes(Callback):
        order = 100
        def before_fit(self): self.times = getattr(self, "times", [])
        def before_epoch(self): self.t0 = time.perf_counter()
        def after_epoch(self): self.times.append(time.perf_counter() - self.t0)

    sd = torch.load(f"{a.pretrained}/lm.pth", map_location="cpu")
    sd = sd.get("model", sd)
    layers = sum(1 for k in sd if k.endswith("weight_hh_l0_raw"))
    sizes = dict(emb_sz=sd["0.encoder.weight"].shape[1], n_layers=layers,
                 n_hid=sd["0.rnns.0.weight_hh_l0_raw"].shape[1])
    models = f"{a.work}/fastai/models"
    os.makedirs(models, exist_ok=True)
    for name in ["lm.pth", "itos.pkl"]:
        if not os.path.exists(f"{models}/{name}"):
            os.symlink(os.path.abspath(f"{a.pretrained}/{name}"), f"{models}/{name}")
    set_seed(0)
    df = pd.read_csv(a.data)
    timer = EpochTimes()
    if a.fastai_job == "lm":
        dls = TextDataLoaders.from_df(df, path=f"{a.work}/fastai", text_col="text", is_lm=True,
                                      valid_col="is_valid", bs=64, seq_len=72)
        learn = language_model_learner(dls, AWD_LSTM, config=dict(awd_lstm_lm_config, **sizes),
                                       pretrained=True, pretrained_fnames=["lm", "itos"],
                                       drop_mult=0.3, cbs=timer)
        learn.fit_one_cycle(1, 2e-2)
        learn.unfreeze()
        learn.fit_one_cycle(a.lm_epochs, 2e-3)
        learn.save_encoder("ft")
        with open(f"{models}/ft_vocab.pkl", "wb") as f:
            pickle.dump(list(dls.vocab), f)
        quality = f"ppl {math.exp(learn.recorder.values[-1][1]):.2f}"
    elif a.fastai_job == "clas":
        with open(f"{models}/ft_vocab.pkl", "rb") as f:
            vocab = pickle.load(f)
        dls = TextDataLoaders.from_df(df, path=f"{a.work}/fastai", text_col="text", label_col="label",
                                      valid_col="is_valid", text_vocab=vocab, bs=64, seq_len=72)
        learn = text_classifier_learner(dls, AWD_LSTM, config=dict(awd_lstm_clas_config, **sizes),
                                        pretrained=False, drop_mult=0.5, metrics=accuracy, cbs=timer)
        learn.load_encoder("ft")
        learn.freeze()
        for epochs, lr, groups in [(1, 2e-2, 1), (1, 1e-2, 2), (1, 5e-3, 3), (a.final_epochs, 1e-3, 0)]:
            learn.freeze_to(-groups) if groups else learn.unfreeze()
            learn.fit_one_cycle(epochs, slice(lr / 2.6**4, lr) if groups != 1 else lr)
        learn.remove_cb(timer)
        learn.export("clas.pkl")
        quality = f"accuracy {learn.recorder.values[-1][2]:.4f}"
    else:
        learn = load_learner(f"{a.work}/fastai/clas.pkl")
        texts, labels = test_set(a)
        preds, _ = learn.get_preds(dl=learn.dls.test_dl(pd.DataFrame({"text": texts}), bs=64))
        vocab = list(learn.dls.vocab[1])
        got = [vocab[i] for i in preds.argmax(1).tolist()]
        quality = f"accuracy {share_right(got, labels):.4f}"
    print(json.dumps(dict(epochs=timer.times if a.fastai_job != "predict" else [], quality=quality)))


def table(sides):
    """Seconds per epoch and per job, a column per side, and fastai's time over each awd side's."""
    names = list(sides)
    awds = [n for n in names if n != "fastai"] if "fastai" in sides else []
    rows = []
    for job, label in [("lm", "LM fine-tuning"), ("clas", "classifier"), ("predict", "predict")]:
        per = [sides[n][job] for n in names]
        for e in range(max(len(p["epochs"]) for p in per)):
            cells = [p["epochs"][e] if e < len(p["epochs"]) else None for p in per]
            rows.append((f"  {label} epoch {e + 1}", cells))
        rows.append((f"{label} (process)", [p["s"] for p in per]))
    rows.append(("whole pipeline", [sum(sides[n][j]["s"] for j in sides[n]) for n in names]))
    print(f"{'seconds':<30}" + "".join(f"{n:>11}" for n in names)
          + "".join(f"{'fastai/' + n.split()[-1]:>13}" for n in awds))
    for label, cells in rows:
        line = f"{label:<30}" + "".join(f"{c:>11.1f}" if c is not None else f"{'':>11}" for c in cells)
        fastai = cells[names.index("fastai")] if awds else None
        for n in awds:
            c = cells[names.index(n)]
            line += f"{fastai / c:>12.2f}x" if None not in (c, fastai) else f"{'':>13}"
        print(line)
    for job in ["lm", "clas", "predict"]:
        print(f"{job:<8} peak RSS " + ", ".join(f"{n} {sides[n][job]['rss']:.0f} MB" for n in names)
              + "; " + ", ".join(f"{n} {sides[n][job]['quality']}" for n in names))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pretrained")
    ap.add_argument("data")
    ap.add_argument("--awd", default=os.path.join(os.path.dirname(HERE), "..", "target", "release", "awd"))
    ap.add_argument("--lm-epochs", type=int, default=2)
    ap.add_argument("--final-epochs", type=int, default=2)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--only", choices=["awd", "fastai"])
    ap.add_argument("--precision", default="f32", help="awd's, comma-separated: f32, bf16, auto")
    ap.add_argument("--work")
    ap.add_argument("--fastai-job", choices=["lm", "clas", "predict"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.fastai_job:
        return fastai_job(a)
    work = a.work or tempfile.mkdtemp(prefix="ulmfit-pipeline-")
    print(f"working in {work}", file=sys.stderr)
    sides = {}
    runs = [(f"awd {p}", run_awd, p) for p in a.precision.split(",") if a.only in (None, "awd")]
    runs += [("fastai", run_fastai, None)] if a.only in (None, "fastai") else []
    for side, run, precision in runs:
        sides[side] = run(a, work, precision)
        print(f"{side}: {sum(j['s'] for j in sides[side].values()):.1f} s", file=sys.stderr)
    table(sides)


if __name__ == "__main__":
    main()
