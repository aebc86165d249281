"""A weight-space average ("model soup") of finished models for benchmarks/RESULTS.md, merged by
mergekit's own ``linear`` method and scored like every other system.

    python benchmarks/soup_variant.py NAME DIR1 DIR2 ... [--limit 200] [--results NAME2]

The recipe goes to runs/bench/variants/soups/<slug>.yml, the model beside it (<slug>/); the scores
into benchmarks/results/systems.json (or ``--results NAME2``) under NAME (skipped when NAME is there).
A soup of the MEM-MCL models of several weak-set draws measures how much of the draw-to-draw swing
averages out in weight space (it costs one evolution and curriculum per member).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmark as rb

from memmcl_merge.soup import soup_models


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--results", default="systems", help="the results file, benchmarks/results/<name>.json")
    ap.add_argument("--data", type=Path, default=rb.DEFAULT_DATA)
    args = ap.parse_args(argv)

    res = rb.Results(args.results)
    res.check_dtype()
    if res.has(args.name):
        print(f"{args.name}: measured already, skipped")
        return
    if len(args.models) < 2:
        raise SystemExit("a soup needs at least two model folders")
    root = rb.ROOT / "runs" / "bench" / "variants" / "soups"
    slug = rb.variant_slug(args.name)
    recipe, target = root / f"{slug}.yml", root / slug
    t0 = time.perf_counter()
    if not (target / "config.json").is_file():
        try:
            soup_models(args.models, target, recipe, comment=f"{args.name}: the uniform average of "
                                                             f"{len(args.models)} models")
        except FileNotFoundError as exc:
            raise SystemExit(str(exc)) from None
    built = time.perf_counter() - t0
    scored = rb.score_model(str(target), str(args.data.resolve()), "test_500", args.limit, tasks="all")
    res.put(args.name, {"model": str(target), "recipe": str(recipe), "members": [str(m.resolve()) for m in args.models],
                        "build_seconds": built, **scored})
    print(args.name, scored["means"])


if __name__ == "__main__":
    main()
