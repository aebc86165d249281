# The two commands of the README, plus the pieces they are made of.
.PHONY: setup test test-all demo bench lint

setup:
	bash scripts/setup.sh

# The default suite: tiny random models, under ~10 minutes on 2 cores.
test: setup
	.venv/bin/python -m pytest -m "not slow" -q

# Everything, including the slow tests (ray cluster, the real 135M model).
test-all: setup
	.venv/bin/python -m pytest -q

# The main job on the embedded default: SmolLM2-135M-Instruct and the generated corpus.
demo: setup
	.venv/bin/memmcl run configs/default.yml

lint:
	.venv/bin/ruff check memmcl_merge tests benchmarks evals
