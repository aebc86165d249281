"""A controlled evolution run for benchmarks/RESULTS.md: the benchmark's MEM-MCL (both stages, then
the curriculum) with some evolution settings changed, from the same experts, scored like every
other system.

    python benchmarks/evolve_variant.py NAME KEY=VALUE ... [--limit 200] [--results NAME2]

KEY is ``weak.FIELD`` (e.g. ``weak.sampling=proportional``, ``weak.size=32``) or ``search.FIELD``
(``search.layer_groups=3``) or a field of ``evolve`` itself. The run lives in
runs/bench/variants/evolve_<slug> (its ``experts`` folder links to the benchmark's experts, so none
is retrained); its final model (stage 2 + curriculum) is scored into benchmarks/results/NAME2.json
under NAME. Each part resumes: finished searches, a finished curriculum and a measured NAME are
skipped.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmark as rb


def with_overrides(cfg, overrides: list[str]):
    """The run config with ``evolve`` settings replaced (``weak.X=V``, ``search.X=V``, ``X=V``)."""
    evolve = cfg.evolve.model_dump()
    for item in overrides:
        key, _, raw = item.partition("=")
        value = yaml.safe_load(raw)
        section, _, field = key.rpartition(".")
        where = evolve[section] if section else evolve
        if not isinstance(where, dict) or field not in where:
            raise SystemExit(f"unknown override {key!r}: not a field of evolve, evolve.weak or evolve.search")
        where[field] = value
    return cfg.model_copy(update={"evolve": cfg.evolve.model_validate(evolve)})


def main(argv=None) -> None:
    args = rb.variant_args(__doc__, argv)

    from memmcl_merge.curriculum import run_curriculum
    from memmcl_merge.evolve import run_plan

    res = rb.Results(args.results)
    if res.has(args.name):
        print(f"{args.name}: measured already, skipped")
        return
    bench = rb.bench_config(args)
    run_dir = (bench.output_dir / "variants" / f"evolve_{rb.variant_slug(args.name)}").resolve()
    cfg = with_overrides(bench, args.overrides).model_copy(update={"output_dir": run_dir})
    experts = run_dir / "experts"
    if not experts.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        experts.symlink_to(bench.experts_dir.resolve(), target_is_directory=True)
    t0 = time.perf_counter()
    searches = run_plan(cfg)
    search_seconds = sum(r["seconds"] for r in searches.values())
    build = run_curriculum(cfg)["seconds"]
    print(f"evolution {search_seconds:.0f} s, curriculum {build:.0f} s (this call {time.perf_counter() - t0:.0f} s)")
    final = run_dir / "final"
    scored = rb.score_model(str(final), str(args.data.resolve()), "test_500", args.limit, tasks="all")
    res.put(args.name, {"model": str(final), "build_seconds": search_seconds + build,
                        "search_seconds": search_seconds, "curriculum_seconds": build,
                        "overrides": args.overrides,
                        "fitness": {k: [r["start_fitness"], r["best_fitness"]] for k, r in searches.items()},
                        **scored})
    print(args.name, scored["means"])


if __name__ == "__main__":
    main()
