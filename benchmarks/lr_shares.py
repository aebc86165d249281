"""The learning rate each task's rows get under the curriculum's one schedule, per pass setting
(benchmarks/RESULTS.md, session 23), and how the seed-mean scores follow it within each task.

    python benchmarks/lr_shares.py [--run DIR] [--results systems_experts3_full500]

For each setting: per task the passes over its rows, ``curriculum.lr_shares`` (its rows' mean rate
over the mean of all rows; 1 = spread evenly, as in the shuffled multitask SFT) and their product,
the passes at the run's mean rate. Then, over the 3-pass settings with runs in the results file, the
within-task slope of the raw seed-mean score on those passes. No model is run. Writes
results/lr_shares_<results>.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmark as rb

RUN = Path("runs/bench/variants/evolve_mem_mcl_stage_2_curriculum_weak_sets_of_32_experts_3_epochs")
# label: (passes, mix_span, --only words for its seeds in the results file, or None)
SETTINGS = {
    "[1.5, 4.5]": ((1.5, 4.5), 0.5, ("curriculum passes x3, curriculum training seed,=MEM-MCL stage 2 + "
                                     "curriculum, weak sets of 32, experts 3 epochs, curriculum passes x3")),
    "[2.5, 3.5]": ((2.5, 3.5), 0.5, ("=MEM-MCL stage 2 + curriculum, weak sets of 32, experts 3 epochs, "
                                     "passes [2.5, 3.5],passes [2.5, 3.5], curriculum training seed")),
    "[3, 3]": ((3.0, 3.0), 0.5, "three passes every task"),
    "[3, 3], mix_span 0.25": ((3.0, 3.0), 0.25, None),
}


def within_task_fit(settings: list[dict], tasks: list[str], x_key: str, y_key: str = "raw_seed_mean") -> dict:
    """Least squares of score on passes with one intercept per task (both centred within each task):
    how the score follows the passes across settings, task by task, not across tasks."""
    xs, ys = [], []
    for t in tasks:
        x = [s[t][x_key] for s in settings]
        y = [s[t][y_key] for s in settings]
        xs += [v - statistics.mean(x) for v in x]
        ys += [v - statistics.mean(y) for v in y]
    sxx, syy = sum(v * v for v in xs), sum(v * v for v in ys)
    sxy = sum(a * b for a, b in zip(xs, ys))
    if not sxx or not syy:
        raise ValueError(f"within_task_fit: no spread in {x_key if not sxx else y_key} within any task")
    return {"slope_per_pass": round(sxy / sxx, 4), "r": round(sxy / (sxx * syy) ** 0.5, 3), "points": len(xs)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=RUN, help="the evolution run whose curriculum plan is read")
    ap.add_argument("--results", default="systems_experts3_full500")
    ap.add_argument("--config", type=Path, default=rb.HERE / "bench.yml")
    ap.add_argument("--data", type=Path, default=rb.DEFAULT_DATA)
    args = ap.parse_args(argv)

    from memmcl_merge.curriculum import curriculum_rows, lr_shares, plan_curriculum, task_passes
    from memmcl_merge.io import read_json, write_json

    base = rb.run_config(args)
    plan = plan_curriculum(base)
    rows = read_json(rb.RESULTS / f"{args.results}.json")["systems"]
    out: dict = {"run": str(args.run), "order": [d.task for d in plan], "settings": {}}
    for label, (passes, span, only) in SETTINGS.items():
        cur = base.curriculum.model_validate({**base.curriculum.model_dump(), "passes": passes, "mix_span": span})
        shares = lr_shares(curriculum_rows(base.model_copy(update={"curriculum": cur}), plan)[1], cur.train)
        entry = {d.task: {"passes": round(task_passes(passes, k, len(plan)), 4), "lr_share": shares[d.task]}
                 for k, d in enumerate(plan)}
        runs = rb._selected_runs(rows, argparse.Namespace(only=only, results=args.results)) if only else []
        for t, e in entry.items():
            e["at_mean_rate"] = round(e["passes"] * e["lr_share"], 4)
            if runs:
                e["raw_seed_mean"] = round(statistics.mean(rows[n]["scores"][t]["score"] for n in runs), 4)
        out["settings"][label] = {"passes": passes, "mix_span": span, "runs": runs, "tasks": entry}
    measured = [s["tasks"] for s in out["settings"].values() if s["runs"]]
    fits = {x: within_task_fit(measured, out["order"], x) for x in ("at_mean_rate", "passes")}
    out["within_task_fit"] = fits
    dest = write_json(rb.RESULTS / f"lr_shares_{args.results}.json", out)
    print("task".ljust(16), *(f"{k:>24}" for k in out["settings"]))
    for t in out["order"]:
        print(t.ljust(16), *(f"{s['tasks'][t]['lr_share']:.2f} x {s['tasks'][t]['passes']:.2f} = "
                             f"{s['tasks'][t]['at_mean_rate']:.2f}".rjust(24) for s in out["settings"].values()))
    print("within-task fit:", fits, "->", dest)


if __name__ == "__main__":
    main()
