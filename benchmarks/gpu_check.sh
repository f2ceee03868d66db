#!/usr/bin/env bash
# The GPU path on a lent machine, in at most 8 minutes (one prepared call):
#   1. extraction throughput: ResNet-50, random weights, 224 px, bf16 autocast,
#      channels_last (benchmarks/bench_gpu.py; target >= 3,000 img/s);
#   2. scoring one backbone at ImageNet-LT shape, D 2048, flows on the GPU
#      (benchmarks/bench_scale.py; target <= 3 minutes).
# Each step has its own time limit; what finished is kept. Results go to
# ${OUT:-reports/benchmarks}/gpu.json and gpu-scale.json.
#   bash benchmarks/gpu_check.sh            # on the GPU machine
#   SMOKE=1 bash benchmarks/gpu_check.sh    # on a CPU, tiny: checks the script
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-reports/benchmarks}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
if [ -n "${SMOKE:-}" ]; then
	timeout 120 "$PY" benchmarks/bench_gpu.py --smoke --out "$OUT/gpu.json" || exit $?
	timeout 120 "$PY" benchmarks/bench_scale.py --shapes tiny-d64 --out "$OUT/gpu-scale.json"
	exit $?
fi
nvidia-smi --query-gpu=name,memory.total --format=csv || true
timeout 150 "$PY" benchmarks/bench_gpu.py --out "$OUT/gpu.json"; a=$?
timeout 300 "$PY" benchmarks/bench_scale.py --shapes imagenet-lt-d2048 --device cuda \
	--out "$OUT/gpu-scale.json"; b=$?
echo "extraction exit $a, scoring exit $b (124: over its time limit)"
exit $(( a || b ))
