"""Which tasks rank a search's candidates under a fitness (RESULTS.md, session 31; not a test).

    python benchmarks/fitness_spread.py RUN_DIR [RUN_DIR ...] --search stage2/unified \\
        --group sst2,sst5,tweet_sentiment,lap14_atsc,rest14_atsc --metric mix --metric macro_mix

Reads each run's journal of that search (``<run>/evolve/<search>/journal.jsonl``: every candidate's
weak-set scores), re-scores every candidate under each ``--metric`` (``evolve.fitness.classification_metric``)
with the project's FitnessSpec, and reports per metric: the mean standard deviation over candidates of
the group's task values and of the other tasks', and the group's share of the fitness variance
(cov(group part, fitness) / var(fitness); above 1 where the other tasks pull against it). A fitness
whose values spread wider on some tasks hands those tasks the ranking of a mean over tasks. Writes
results/<--results>.json; runs no model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmark as rb


def spread(journal: Path, metric: str, group: list[str]) -> dict:
    from memmcl_merge.evolve import FitnessSpec, Journal

    rows = [r for r in Journal(journal).records if r["status"] == "ok"]
    if len(rows) < 3:
        raise SystemExit(f"{journal}: {len(rows)} scored candidates, too few for a spread")
    tasks = list(rows[0]["scores"])
    if missing := [t for t in group if t not in tasks]:
        raise SystemExit(f"{journal}: --group tasks {missing} are not among the search's tasks {tasks}")
    fit = FitnessSpec(metric)
    values = np.array([[fit.task_value(t, r["scores"][t]) for t in tasks] for r in rows])
    inside = np.array([t in group for t in tasks])
    fitness = np.array([fit(r["scores"]) for r in rows])  # the search's own fitness of each candidate
    part = values[:, inside].sum(axis=1) / len(tasks)
    sd = values.std(axis=0)
    return {"candidates": len(rows), "group_sd": round(float(sd[inside].mean()), 4),
            "other_sd": round(float(sd[~inside].mean()), 4),
            "group_share_of_fitness_variance": round(float(np.cov(part, fitness)[0, 1] / fitness.var(ddof=1)), 3)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--search", default="stage2/unified")
    ap.add_argument("--group", required=True, help="comma-separated tasks")
    ap.add_argument("--metric", action="append", required=True, help="a classification_metric; repeatable")
    ap.add_argument("--results", default="fitness_spread")
    args = ap.parse_args(argv)

    from memmcl_merge.io import write_json

    group = [t.strip() for t in args.group.split(",") if t.strip()]
    out = {"search": args.search, "group": group, "runs": {}}
    for run in args.runs:
        journal = run / "evolve" / args.search / "journal.jsonl"
        if not journal.is_file():
            raise SystemExit(f"no journal at {journal}")
        out["runs"][run.name] = {m: spread(journal, m, group) for m in args.metric}
        for m, v in out["runs"][run.name].items():
            print(f"{run.name}, scored as {m}: {v}")
    write_json(rb.RESULTS / f"{args.results}.json", out)


if __name__ == "__main__":
    main()
