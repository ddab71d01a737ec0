#!/usr/bin/env bash
# Every GPU figure of the README's benchmark table, in one run (issue 12, item 8):
#   OUT=runs/bench/gpu benchmarks/gpu_suite.sh
# bench_train: the whole COPL THUMOS schedule on the THUMOS-shaped preset against the bare training-step
# bound, peak memory, in fp32 (TF32 off), TF32 and bf16-mixed; bench_cci at N = 100,000; bench_scaling
# 1k-100k; bench_data. Each writes its log (and JSON where it has one) under $OUT. Targets: the whole
# schedule within 2x the bare step time; CCI at N = 100k under 60 s and 16 GB.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/bench/gpu}
PY=${PYTHON:-.venv/bin/python}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
if ! nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1; then
    echo "no CUDA device: the GPU figures are not measured"
    exit 1
fi
status=0
step() {  # step NAME COMMAND...: run, keep the log, remember a failure, go on with the next
    local name=$1; shift
    echo "== $name: $*" | tee "$OUT/$name.log"
    "$@" 2>&1 | tee -a "$OUT/$name.log" || status=1
}
step train_fp32 "$PY" benchmarks/bench_train.py --device cuda --schedules thumos --precisions 32-true --no-tf32 \
    --runs-dir runs/bench/gpu_train_fp32 --json "$OUT/train_fp32.json"
step train_tf32_bf16 "$PY" benchmarks/bench_train.py --device cuda --schedules thumos --precisions 32-true,bf16-mixed \
    --runs-dir runs/bench/gpu_train --json "$OUT/train_tf32_bf16.json"
step cci "$PY" benchmarks/bench_cci.py --device cuda --large-n 100000
step scaling "$PY" benchmarks/bench_scaling.py --device cuda --sizes 1000,10000,100000 --out "$OUT/scaling.png"
step data "$PY" benchmarks/bench_data.py
exit $status
