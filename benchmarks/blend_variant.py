"""A blend run for benchmarks/RESULTS.md: an evolution run's curriculum model blended back toward its
stage-2 merge (memmcl_merge/blend.py), alpha picked on that run's weak sets, scored like every other
system.

    python benchmarks/blend_variant.py NAME --run DIR [grid=[0,0.25,0.5,0.75,1]] [--trained DIR2] [--limit 200]

``--run DIR``: an evolution run (an evolve_variant.py folder, default runs/bench); its stage-2 merge is
the start, its ``final`` (or ``--trained DIR2``, e.g. a curriculum_variant.py model) the curriculum
model; the fitness is the run's own (its weak sets, bench.yml's evolve.fitness). The model goes to
<run>/variants/<slug>, its recipe to <run>/recipes/<slug>.yml; the scores go into
benchmarks/results/systems.json (or ``--results NAME2``) under NAME (skipped when NAME is there).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmark as rb


def main(argv=None) -> None:
    args = rb.variant_args(__doc__, argv, run_option=True, need_overrides=False, extra=lambda ap: ap.add_argument(
        "--trained", type=Path, default=None, help="the curriculum model to blend (default: <run>/final)"))

    from memmcl_merge.blend import run_blend

    res = rb.Results(args.results)
    res.check_dtype()
    if res.has(args.name):
        print(f"{args.name}: measured already, skipped")
        return
    cfg = rb.with_run_weak_sets(rb.run_config(args))
    blend = {"enabled": True}
    for item in args.overrides:
        key, _, raw = item.partition("=")
        if key not in type(cfg.blend).model_fields:
            raise SystemExit(f"unknown override {key!r}: not a field of blend")
        blend[key] = yaml.safe_load(raw)
    cfg = cfg.model_copy(update={"blend": cfg.blend.model_validate({**cfg.blend.model_dump(), **blend})})
    out = cfg.output_dir / "variants" / rb.variant_slug(args.name)
    trained = args.trained.resolve() if args.trained is not None else cfg.output_dir / "final"
    record = run_blend(cfg, trained=trained, out=out)
    scored = rb.score_model(str(out), str(args.data.resolve()), "test_500", args.limit, tasks="all")
    res.put(args.name, {"model": str(out), "build_seconds": record["seconds"], "overrides": args.overrides,
                        "alpha": record["alpha"], "trained_model": str(trained),
                        "weak_fitness": {str(r["alpha"]): r["fitness"] for r in record["tried"]}, **scored})
    print(args.name, f"alpha {record['alpha']}", scored["means"])


if __name__ == "__main__":
    main()
