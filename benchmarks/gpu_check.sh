#!/usr/bin/env bash
# The GPU checks to run once whenever a GPU machine is lent (see README "Measured results"), under 8 minutes:
#   1. V-JEPA 2 ViT-L/256 and ViT-g/384 encoder throughput in bf16 (benchmarks/encoder_throughput.py --gpu)
#   2. one forward/backward of a Llama-2-7B-shaped OpenVLA* action-chunk batch (benchmarks/openvla_7b_step.py)
#   3. two training steps of the paper preset at the published shapes, random weights (gpu_paper_smoke.py)
# Usage, from the repo root on the GPU machine (its python3 already holds torch + transformers; srpo runs from src/):
#   bash benchmarks/gpu_check.sh [RESULTS_DIR]        # default: benchmarks/results, or $OUT when it is set
# Each step has its own time limit so that one slow step cannot take the others' time; the script goes on after a
# failed step and exits non-zero at the end if any failed. Commit the JSON files it writes.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-benchmarks/results}}"
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
python="${PYTHON:-python3}"
status=0
step() {  # step NAME SECONDS CMD...
    local name=$1 limit=$2; shift 2
    echo "=== $name (limit ${limit}s) ==="
    local t0=$SECONDS
    timeout --signal=INT "$limit" "$@" 2>&1 | tee "$out/gpu_check_$name.log"
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc after $((SECONDS - t0))s ==="
    [ "$rc" -eq 0 ] || status=1
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu_check_device.log"
step encoder 150 "$python" benchmarks/encoder_throughput.py --gpu --batch-size 8 --repeats 2 \
    --json "$out/encoder_throughput.json"
step openvla_7b 120 "$python" benchmarks/openvla_7b_step.py --batch-sizes 1 4 8 --repeats 3 \
    --out "$out/openvla_7b_step.json"
step paper_smoke 180 "$python" benchmarks/gpu_paper_smoke.py --steps 2 --group-size 4 --num-prompts 2 \
    --out "$out/gpu_paper_smoke.json"
echo "gpu_check: $([ $status -eq 0 ] && echo all steps passed || echo some steps FAILED); results in $out"
exit $status
