"""PyTorch + fastai side of `awd bench`: the same shapes, timed the same way.

usage: fastai_bench.py p1|p2|clas [STEPS] [--bf16]
--bf16 runs every forward pass under torch.autocast("cpu", dtype=torch.bfloat16) (PyTorch's mixed
precision: bf16 matmuls through oneDNN, f32 weights and optimizer), awd's `--precision bf16`.
Prints train (forward, cross-entropy + AR + TAR, backward, global-norm clipping, AdamW: the step of
awd's `awd-lstm-lm` preset that `awd bench` times), eval (no grad) and batch-1
generation figures, then `train <config> tokens_per_s=<n> peak_rss_mb=<n>`.
Set-up: python3 -m venv /tmp/ref && /tmp/ref/bin/pip install torch fastai
Not part of awd's build or tests.
"""
import contextlib, resource, sys, time, warnings

import torch
import torch.nn.functional as F

warnings.simplefilter("ignore")
from fastai.text.models.awdlstm import AWD_LSTM
from fastai.text.models.core import LinearDecoder, SequentialRNN

SHAPES = {"p1": (10000, 200, 512, 2, 32, 35, 10), "p2": (10000, 400, 1152, 3, 32, 70, 3)}
BF16 = "--bf16" in sys.argv
sys.argv = [a for a in sys.argv if a != "--bf16"]
name = sys.argv[1]


def autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16) if BF16 else contextlib.nullcontext()

if name == "clas":
    # `awd bench clas`: fastai's get_text_classifier at its default sizes (awd_lstm_clas_config,
    # drop_mult 0.5, lin_ftrs [50]), 64 documents of 250 tokens, CE + AR 2 + TAR 1 on the
    # encoder's output (fastai's RNNRegularizer), AdamW as text learners use it, every group
    # unfrozen, no clipping.
    from fastai.text.all import awd_lstm_clas_config
    from fastai.text.models.core import get_text_classifier
    V, E, H, L, B, T = 10000, 400, 1152, 3, 64, 250
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    torch.manual_seed(0)
    config = dict(awd_lstm_clas_config, emb_sz=E, n_hid=H, n_layers=L)
    model = get_text_classifier(AWD_LSTM, V, 2, seq_len=72, config=config, drop_mult=0.5)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.99), eps=1e-5, weight_decay=0.01)

    def clas_step():
        x, y = torch.randint(2, V, (B, T)), torch.randint(0, 2, (B,))
        opt.zero_grad()
        with autocast():
            logits, raw, out = model(x)
            loss = F.cross_entropy(logits.float(), y) + 2.0 * out.float().pow(2).mean() + 1.0 * (raw[:, 1:] - raw[:, :-1]).float().pow(2).mean()
        loss.backward()
        opt.step()

    model.train()
    clas_step()
    t = time.perf_counter()
    for _ in range(steps):
        clas_step()
    s = (time.perf_counter() - t) / steps
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"train    {s * 1e3:.1f} ms/step  {B * T / s:.0f} tokens/s")
    print(f"torch {torch.__version__} threads={torch.get_num_threads()}")
    print(f"train clas{' bf16' if BF16 else ''} tokens_per_s={B * T / s:.0f} peak_rss_mb={rss:.0f}")
    sys.exit(0)
V, E, H, L, B, T, steps = SHAPES[name]
if len(sys.argv) > 2:
    steps = int(sys.argv[2])
torch.manual_seed(0)
enc = AWD_LSTM(V, E, H, L, hidden_p=0.15, input_p=0.25, embed_p=0.02, weight_p=0.2)
dec = LinearDecoder(V, E, 0.1, tie_encoder=enc.encoder, bias=True)
model = SequentialRNN(enc, dec)
# awd's awd-lstm-lm preset: AdamW (decoupled weight decay, as fastai's true_wd), clip 0.1, AR 2, TAR 1.
opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01)
CLIP = 0.1


def batch(b, t):
    return torch.randint(0, V, (b, t)), torch.randint(0, V, (b, t))


def train_step():
    x, y = batch(B, T)
    opt.zero_grad()
    with autocast():
        logits, raw, out = model(x)
        loss = F.cross_entropy(logits.float().reshape(-1, V), y.reshape(-1))
        loss = loss + 2.0 * out.float().pow(2).mean() + 1.0 * (raw[:, 1:] - raw[:, :-1]).float().pow(2).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    opt.step()


def timed(fn, n):
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


model.eval()
with torch.no_grad():
    def eval_step():
        x, y = batch(B, T)
        with autocast():
            F.cross_entropy(model(x)[0].float().reshape(-1, V), y.reshape(-1)).item()

    e = timed(eval_step, steps)
    print(f"eval     {e * 1e3:.1f} ms/batch  {B * T / e:.0f} tokens/s")
    model.reset()
    tok = torch.zeros(1, 1, dtype=torch.long)

    def gen_step():
        global tok
        with autocast():
            tok = model(tok)[0][:, -1].argmax(-1, keepdim=True)

    g = timed(gen_step, 200)
    print(f"generate {g * 1e3:.2f} ms/token  {1 / g:.0f} tokens/s (batch 1)")
model.train()
model.reset()
s = timed(train_step, steps)
print(f"train    {s * 1e3:.1f} ms/step  {B * T / s:.0f} tokens/s")
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"torch {torch.__version__} threads={torch.get_num_threads()}")
print(f"train {name}{' bf16' if BF16 else ''} tokens_per_s={B * T / s:.0f} peak_rss_mb={rss:.0f}")
