"""How well the curriculum's ``merge_gap`` (expert dev score - the stage-2 winner's weak-set score, on
32 rows) measures what merging lost on test (benchmarks/RESULTS.md, session 42).

    python benchmarks/merge_gap_rows.py --run DIR --system NAME --stage2 NAME [--rows 128]

Scores the run's stage-2 winner and each of its experts on the same ``--rows`` dev rows per task
(the experts step's sampling and seed, more rows), and sets that gap and the plan's own gap beside
the test gap (the own expert's test score in ``--system``'s row of the results file, minus the
``--stage2`` row's): per task, the mean absolute error and the rank correlation against the test gap,
and the passes each gap would give under the run's weights and ``curriculum.passes``. Test is read,
never used to plan. Writes results/merge_gap_rows_<results>.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmark as rb
from absa_fitness import spearman


def against_test(gap: dict[str, float], test: dict[str, float]) -> dict[str, float]:
    """How close one measured gap is to the test gap: mean absolute error, and rank correlation (ties
    averaged: many gaps are clipped to 0) over all tasks and over the label tasks."""
    tasks = list(test)
    labels = [t for t in tasks if not t.startswith("aste")]
    return {"mean_abs_error": round(sum(abs(gap[t] - test[t]) for t in tasks) / len(tasks), 4),
            "spearman_12": round(spearman([gap[t] for t in tasks], [test[t] for t in tasks]), 3),
            "spearman_label_tasks": round(spearman([gap[t] for t in labels], [test[t] for t in labels]), 3)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="the evolution run (experts, stage-2 winner, plan)")
    ap.add_argument("--system", required=True, help="a curriculum row of the results file (its own experts)")
    ap.add_argument("--stage2", required=True, help="the results row of that run's stage-2 winner on test")
    ap.add_argument("--rows", type=int, default=128, help="dev rows per task for the new measurement")
    ap.add_argument("--results", default="systems_experts3_full500")
    ap.add_argument("--config", type=Path, default=rb.HERE / "bench.yml")
    ap.add_argument("--data", type=Path, default=rb.DEFAULT_DATA)
    args = ap.parse_args(argv)

    from memmcl_merge.curriculum import MARKER, plan_curriculum, task_passes
    from memmcl_merge.io import read_json, write_json

    rows = read_json(rb.RESULTS / f"{args.results}.json")["systems"]
    for name in (args.system, args.stage2):
        if name not in rows:
            raise SystemExit(f"{name!r}: no such row in results/{args.results}.json")
    # the plan that trained --system: its recorded curriculum settings (weights, passes) on this run
    cfg = rb.run_config(args)
    trained = read_json(Path(rows[args.system]["model"]) / MARKER)["config"]
    cfg = cfg.model_copy(update={"curriculum": cfg.curriculum.model_validate(trained)})
    plan = plan_curriculum(cfg)
    tasks = [d.task for d in plan]
    own = rows[args.system]["own_experts"]
    test = {t: max(0.0, own[t]["score"]["score"] - rows[args.stage2]["scores"][t]["score"]) for t in tasks}
    plan_gap = {d.task: d.parts["merge_gap"] for d in plan}

    merged = rb.score_model(str(cfg.output_dir / "stage2" / "unified"), str(args.data), "dev", args.rows, tasks)
    experts = {t: rb.score_model(str(cfg.experts_dir / t), str(args.data), "dev", args.rows, [t])["scores"][t]
               for t in tasks}
    dev = {t: max(0.0, experts[t]["score"] - merged["scores"][t]["score"]) for t in tasks}

    weights = cfg.curriculum.weights.model_dump()
    out = {"run": str(args.run), "rows": args.rows, "tasks": {}, "against_test": {}, "passes": {}}
    for t in tasks:
        out["tasks"][t] = {"plan_gap_weak32": plan_gap[t], f"dev{args.rows}_gap": round(dev[t], 4),
                           "test_gap": round(test[t], 4), f"dev{args.rows}_expert": experts[t]["score"],
                           f"dev{args.rows}_merged": merged["scores"][t]["score"]}
    for label, gap in (("plan_gap_weak32", plan_gap), (f"dev{args.rows}_gap", dev)):
        out["against_test"][label] = against_test(gap, test)
    for label, gap in (("plan_gap_weak32", plan_gap), (f"dev{args.rows}_gap", dev), ("test_gap", test)):
        scored = []
        for d in plan:  # the plan's own score with this gap in merge_gap's place
            parts = {**d.parts, "merge_gap": gap[d.task]}
            used = {k: v for k, v in parts.items() if weights.get(k, 0.0) > 0}
            scored.append((sum(weights[k] * v for k, v in used.items()) / sum(weights[k] for k in used), d.task))
        out["passes"][label] = {t: round(task_passes(cfg.curriculum.passes, k, len(tasks)), 2)
                                for k, (_, t) in enumerate(sorted(scored))}
    dest = write_json(rb.RESULTS / f"merge_gap_rows_{args.results}.json", out)
    for label, v in out["against_test"].items():
        print(f"{label}: {v}")
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
