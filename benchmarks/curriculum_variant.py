"""A controlled curriculum run for benchmarks/RESULTS.md: the benchmark's curriculum with some
training settings changed, from the same stage-2 model, scored like every other system.

    python benchmarks/curriculum_variant.py NAME KEY=VALUE ... [--limit 200] [--run DIR]

KEY is a field of ``curriculum.train`` (e.g. ``lr_scheduler=constant_with_warmup``,
``sampling=proportional``) or of ``curriculum`` (``order=shuffled``, ``replay=0.5``). ``--run DIR``
starts from another evolution run (an evolve_variant.py folder): its stage-2 merge, and its search
scores in the curriculum plan; where that run trained its own experts (its experts_own_scores.json,
also when it stopped at the merge) the row records them, so the ``bar`` step holds it to them. The
model goes to <run>/variants/<slug> (default run: runs/bench); the scores go into
benchmarks/results/systems.json (or ``--results NAME2``: NAME2.json) under NAME (skipped when NAME is
there already).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmark as rb


def own_experts_of(run: Path | None) -> dict:
    """``{"own_experts": ...}`` when the evolution run trained and scored its own experts, else {}."""
    from memmcl_merge.io import read_json

    path = run / "experts_own_scores.json" if run else None
    return {"own_experts": read_json(path)} if path and path.is_file() else {}


def main(argv=None) -> None:
    args = rb.variant_args(__doc__, argv, run_option=True)

    from memmcl_merge.curriculum import run_curriculum

    res = rb.Results(args.results)
    res.check_dtype()
    if res.has(args.name):
        print(f"{args.name}: measured already, skipped")
        return
    cfg = rb.run_config(args)
    train, top = cfg.curriculum.train.model_dump(), {}
    for item in args.overrides:
        key, _, raw = item.partition("=")
        value = yaml.safe_load(raw)
        if key in train:
            train[key] = value
        elif key in type(cfg.curriculum).model_fields:
            top[key] = value
        else:
            raise SystemExit(f"unknown override {key!r}: not a field of curriculum.train or curriculum")
    curriculum = cfg.curriculum.model_validate({**cfg.curriculum.model_dump(), **top, "train": train})
    cfg = cfg.model_copy(update={"curriculum": curriculum})
    out = cfg.output_dir / "variants" / rb.variant_slug(args.name)
    # same start model and plan as the benchmark's curriculum; a model trained by an interrupted
    # call is reused, and its record keeps the training seconds (of the part after the checkpoint, when
    # a killed training was resumed: the row says from which step)
    record = run_curriculum(cfg, out=out)
    resumed = record["train"].get("resumed_from_step")
    scored = rb.score_model(str(out), str(args.data.resolve()), "test_500", args.limit, tasks="all")
    res.put(args.name, {"model": str(out), "build_seconds": record["seconds"], "overrides": args.overrides,
                        **({"build_resumed_from_step": resumed} if resumed else {}),
                        **own_experts_of(args.run), **scored})
    print(args.name, scored["means"])


if __name__ == "__main__":
    main()
