#!/usr/bin/env bash
# Serving side by side: `awd serve` and fastai (load_learner + learn.predict behind FastAPI +
# uvicorn, bench/fastai_serve.py) on the same export.pkl, driven by the same load generator
# (examples/serve_load.rs) at concurrency 1, 8 and 64 with the shared movie reviews, one after the
# other on this machine; then each server's peak RSS. Loopback only.
#
# usage: bench/serve_bench.sh [EXPORT_PKL] [CSV] [PYTHON]   (PYTHON: one with fastai, fastapi, uvicorn)
set -euo pipefail
cd "$(dirname "$0")/.."
export_pkl=${1:-../shared/testdata/fastai_export/export.pkl}
csv=${2:-../shared/data/rotten_tomatoes.csv}
python=${3:-/tmp/ref/bin/python}
cargo build --release -q --bin awd --example serve_load
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

start() { # NAME COMMAND...: starts a server, waits for its "listening on" line, sets $url $pid
  local name=$1; shift
  "$@" > "$tmp/$name.out" 2> "$tmp/$name.err" &
  pid=$!
  for _ in $(seq 600); do grep -q 'listening on' "$tmp/$name.out" 2>/dev/null && break; sleep 0.2; done
  url=$(grep -o 'http://[0-9.:]*' "$tmp/$name.out")
  for _ in $(seq 300); do curl -sf "$url/healthz" > /dev/null && return; sleep 0.2; done
  echo "$name did not start: $(cat "$tmp/$name.err")" >&2; exit 1
}
rss() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

start awd target/release/awd serve --model "$export_pkl" --addr 127.0.0.1:0
awd_url=$url awd_pid=$pid
start fastai "$python" bench/fastai_serve.py "$export_pkl" 18481
fastai_url=$url fastai_pid=$pid

echo "| concurrency | server | documents/s | p50 ms | p99 ms | failed |"
echo "|---|---|---|---|---|---|"
for c in 1 8 64; do
  n=$((c == 1 ? 100 : 400))
  for side in awd fastai; do
    u=${side}_url
    r=$(target/release/examples/serve_load "${!u}" "$csv" "$c" "$n")
    echo "$r" | "$python" -c "import json,sys; r=json.load(sys.stdin); print(f\"| $c | $side | {r['docs_per_s']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['failed']} |\")"
  done
done
echo
echo "peak RSS: awd $(rss "$awd_pid") MB, fastai $(rss "$fastai_pid") MB"
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
