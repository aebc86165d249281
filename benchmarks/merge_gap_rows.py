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


def against_test(gap: dict[str, float], test: dict[str, float], labels: list[str]) -> dict[str, float]:
    """How close one measured gap is to the test gap: mean absolute error, and rank correlation (ties
    averaged: many gaps are clipped to 0) over all tasks and over the label tasks ``labels``."""
    tasks = list(test)
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

    from memmcl_merge.curriculum import (
        MARKER,
        measured_signals,
        plan_curriculum,
        start_model_dir,
        task_passes,
    )
    from memmcl_merge.io import read_json, write_json
    from memmcl_merge.tasks import get_task

    rows = read_json(rb.RESULTS / f"{args.results}.json")["systems"]
    for name in (args.system, args.stage2):
        if name not in rows:
            raise SystemExit(f"{name!r}: no such row in results/{args.results}.json")
    # the plan that trained --system: its recorded curriculum settings (weights, passes) on this run,
    # ranked by difficulty (a pinned task_order would hide what the gap changes)
    cfg = rb.run_config(args)
    trained = read_json(Path(rows[args.system]["model"]) / MARKER)["config"]
    cfg = cfg.model_copy(update={"curriculum": cfg.curriculum.model_validate({**trained, "task_order": None})})
    signals = measured_signals(cfg)
    plan = plan_curriculum(cfg, signals=signals)
    tasks = [d.task for d in plan]
    own = rows[args.system]["own_experts"]
    test = {"expert": {t: own[t]["score"]["score"] for t in tasks},
            "merged": {t: rows[args.stage2]["scores"][t]["score"] for t in tasks}}

    def dev_scores(model: Path, among: list[str]) -> dict[str, float]:
        scores = rb.score_model(str(model), str(args.data), "dev", args.rows, among)["scores"]
        return {t: scores[t]["score"] for t in among}

    start = start_model_dir(cfg)  # the stage-2 winner the curriculum trained from
    dev = {"merged": dev_scores(start, tasks),
           "expert": {t: dev_scores(cfg.experts_dir / t, [t])[t] for t in tasks}}

    # each gap through the library's own plan: merge_gap = expert - merged, the other features as recorded
    dev_label = f"dev{args.rows}_gap"
    plan_label = f"plan_gap_weak{cfg.evolve.weak.size}"  # the search's weak rows the plan's gap came from
    plans = {plan_label: plan}
    for label, scores in ((dev_label, dev), ("test_gap", test)):
        swapped = {t: {**signals[t], "expert": scores["expert"][t], "merged": scores["merged"][t]} for t in tasks}
        plans[label] = plan_curriculum(cfg, signals=swapped)
    labels = [t for t in tasks if get_task(t).output_structure == "label"]
    gaps = {label: {d.task: d.parts["merge_gap"] for d in p} for label, p in plans.items()}
    passes = cfg.curriculum.passes
    out = {"run": str(args.run), "rows": args.rows, "start_model": str(start),
           "tasks": {t: {**{label: gaps[label][t] for label in plans}, f"dev{args.rows}_expert": dev["expert"][t],
                         f"dev{args.rows}_merged": dev["merged"][t]} for t in tasks},
           "against_test": {label: against_test(gaps[label], gaps["test_gap"], labels)
                            for label in (plan_label, dev_label)},
           "passes": {label: {d.task: round(task_passes(passes, k, len(p)), 2) for k, d in enumerate(p)}
                      for label, p in plans.items()}}
    dest = write_json(rb.RESULTS / f"merge_gap_rows_{args.results}.json", out)
    for label, v in out["against_test"].items():
        print(f"{label}: {v}")
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
