#!/usr/bin/env bash
# The CUDA tests, then every GPU figure of the README's benchmark table, in one run (issue 12, item 8;
# issue 22, item 5), summarised in $OUT/gpu_suite.json:
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
: > "$OUT/steps.tsv"
step() {  # step NAME COMMAND...: run, keep the log, remember a failure, go on with the next
    local name=$1; shift
    echo "== $name: $*" | tee "$OUT/$name.log"
    local started=$SECONDS
    "$@" 2>&1 | tee -a "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || status=1
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - started))" >> "$OUT/steps.tsv"
}
# The CUDA tests first (tests marked gpu; CI and `make test` hide the device): a broken device path stops
# nothing, but it is the first thing in the log.
step cuda_tests env UTAL_TEST_CUDA=1 "$PY" -m pytest -m gpu -q -p no:cacheprovider --junitxml "$OUT/cuda_tests.xml"
step train_fp32 "$PY" benchmarks/bench_train.py --device cuda --schedules thumos --precisions 32-true --no-tf32 \
    --runs-dir runs/bench/gpu_train_fp32 --json "$OUT/train_fp32.json"
step train_tf32_bf16 "$PY" benchmarks/bench_train.py --device cuda --schedules thumos --precisions 32-true,bf16-mixed \
    --runs-dir runs/bench/gpu_train --json "$OUT/train_tf32_bf16.json"
step cci "$PY" benchmarks/bench_cci.py --device cuda --large-n 100000
step scaling "$PY" benchmarks/bench_scaling.py --device cuda --sizes 1000,10000,100000 --out "$OUT/scaling.png"
step data "$PY" benchmarks/bench_data.py
# utal extract on the GPU: R(2+1)D-18 (random weights: no network there) where torchvision loads; the test backbone
# (the decoding + clip pipeline) anyway
step extract "$PY" benchmarks/bench_extract.py --device cuda --backbone r2plus1d_18 --weights none
step extract_pipeline env PYTHONPATH=. "$PY" benchmarks/bench_extract.py --device cuda --backbone tests.helpers.backbones.TinyBackbone
# One JSON of everything: each step's exit status and seconds, the CUDA tests' counts, the benchmarks' JSON.
"$PY" - "$OUT" <<'PY'
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path
out = Path(sys.argv[1])
steps = {}
for line in (out / "steps.tsv").read_text().splitlines():
    name, rc, seconds = line.split("\t")
    steps[name] = {"exit_status": int(rc), "seconds": int(seconds)}
tests = out / "cuda_tests.xml"
if tests.is_file():
    suite = ET.parse(tests).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    steps["cuda_tests"]["tests"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
results = {name: json.loads(p.read_text()) for name in ("train_fp32", "train_tf32_bf16") if (p := out / f"{name}.json").is_file()}
(out / "gpu_suite.json").write_text(json.dumps({"steps": steps, "results": results}, indent=1) + "\n")
print(f"wrote {out / 'gpu_suite.json'}")
PY
exit $status
