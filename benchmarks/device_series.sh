#!/usr/bin/env bash
# The benchmark's systems at the GPU budget (bench_gpu.yml), one `run_benchmark.py systems` call per
# system group, most informative first, so that a run cut short still holds the comparison that
# matters: experts -> MEM-MCL (stage 2, + curriculum) -> multitask SFT -> base and mergekit baselines
# -> single-stage CMA-ES -> base 2-shot -> the multitask SFT's own spread (training seed 1).
# Every system is saved to benchmarks/results/RESULTS.json as soon as it is scored; run it again to
# resume. A group that fails is reported and the next one still runs. PYTHON picks the interpreter.
#   bash benchmarks/device_series.sh [RESULTS (systems_gpu)] [LIMIT per task (500)] [DATA (../shared/data)] [CONFIG (benchmarks/bench_gpu.yml)]
set -uo pipefail
cd "$(dirname "$0")/.."
results=${1:-systems_gpu}
limit=${2:-500}
data=${3:-../shared/data}
config=${4:-benchmarks/bench_gpu.yml}
failed=0
for only in "expert:" "MEM-MCL stage 2" "=multitask SFT" "base zero-shot,baseline" "single-stage" \
            "base 2-shot" "=multitask SFT, training seed 1"; do
  echo "== $(date +%T) systems --only '$only'"
  "${PYTHON:-python}" benchmarks/run_benchmark.py systems --config "$config" --results "$results" \
    --limit "$limit" --data "$data" --batch-size 64 --only "$only" || { echo "FAILED: --only '$only'"; failed=1; }
done
exit $failed
