"""Does the ABSA weak-set fitness predict the test score? (RESULTS.md, session 24; not a test)

The stage-1 ABSA search (benchmarks/absa_fitness.yml: the two triplet experts alone) scores each
candidate merge on 32 weak rows per task. Every journaled candidate carries both weak metrics, the
exact-match triplet F1 (``score``, the default fitness) and partial credit (``partial_f1``). This
script merges ``--per-search`` candidates of each search again (spread over that search's fitness,
start and winner included), scores them on the test split, and measures how well each weak metric
ranks the candidates by their test triplet F1 (Spearman, pooled over the searches given).

    python benchmarks/absa_fitness.py RUN_DIR [RUN_DIR ...] [--per-search 5] [--limit 500]
        [--results absa_fitness] [--data ../shared/data]

RUN_DIR: a run folder of ``evolve_variant.py --config benchmarks/absa_fitness.yml`` (its
evolve/stage1/absa/journal.jsonl). Each candidate's test scores are saved as soon as they are measured
(``results/<results>.json``, one entry per candidate); a second call measures only what is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmark as rb

KEY = "stage1/absa"


def spread(records: list[dict], n: int) -> list[dict]:
    """``n`` ok candidates at evenly spaced ranks of fitness (lowest to best), the start point
    (generation -1) always among them; each once."""
    ok = sorted((r for r in records if r["status"] == "ok"), key=lambda r: r["fitness"])
    if n >= len(ok):
        return ok
    picked = {round(i * (len(ok) - 1) / (n - 1)) for i in range(n)} if n > 1 else {len(ok) - 1}
    out = [ok[i] for i in sorted(picked)]
    start = next((r for r in ok if r["generation"] == -1), None)
    if start is not None and start not in out:
        out[0] = start  # the lowest pick gives way to the start point
    return out


def candidate_name(run: Path, record: dict) -> str:
    return f"candidate {run.name} {record['generation']}.{record['index']}"


def weak_means(scores: dict) -> dict[str, float]:
    return {m: float(np.mean([row[m] for row in scores.values()])) for m in ("score", "partial_f1")}


def spearman(x, y) -> float:
    """Rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def correlations(candidates: dict[str, dict]) -> dict:
    """How each weak metric ranks the candidates by test exact-match F1 (mean of the two tasks)."""
    rows = list(candidates.values())
    test = [r["test_mean"]["score"] for r in rows]
    return {"candidates": len(rows),
            **{f"spearman_test_score_vs_weak_{m}": spearman([r["weak_mean"][m] for r in rows], test)
               for m in ("score", "partial_f1")},
            "spearman_test_partial_vs_weak_partial_f1": spearman([r["weak_mean"]["partial_f1"] for r in rows],
                                                                  [r["test_mean"]["partial_f1"] for r in rows])}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--per-search", type=int, default=5)
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--results", default="absa_fitness")
    ap.add_argument("--data", type=Path, default=rb.DEFAULT_DATA)
    ap.add_argument("--config", type=Path, default=rb.HERE / "absa_fitness.yml")
    args = ap.parse_args(argv)

    from memmcl_merge.evaluation import Evaluator
    from memmcl_merge.evolve import SearchRunner, link_base
    from memmcl_merge.tasks import get_task

    res = rb.Results(args.results)
    bench = rb.bench_config(args)
    journals = {run: run / "evolve" / KEY / "journal.jsonl" for run in args.runs}
    for run, journal in journals.items():
        if not journal.is_file():
            raise SystemExit(f"{run}: no {journal.relative_to(run)} (not a finished ABSA search)")
    for run, journal in journals.items():
        cfg = bench.model_copy(update={"output_dir": run.resolve()})
        plan = next(p for p in cfg.plan() if p.key == KEY)
        records = [json.loads(line) for line in journal.read_text().splitlines()]
        todo = [r for r in spread(records, args.per_search) if not res.has(candidate_name(run, r))]
        if not todo:
            continue
        runner = SearchRunner(cfg, plan, link_base(cfg), cfg.output_dir / "weak")
        runner.evaluator = Evaluator([get_task(t) for t in plan.tasks], data=str(args.data.resolve()),
                                     split="test_500", limit=args.limit, batch_size=cfg.evolve.batch_size)
        runner.lm = runner.evaluator.wrap(runner.model, runner.tok)
        for r in todo:
            name = candidate_name(run, r)
            t0 = time.perf_counter()
            scores = runner(r["params"])["scores"]
            row = {"run": run.name, "generation": r["generation"], "index": r["index"],
                   "search_fitness": r["fitness"], "weak_mean": weak_means(r["scores"]),
                   "weak": r["scores"], "test": scores, "test_mean": weak_means(scores),
                   "seconds": time.perf_counter() - t0}
            res.put(name, row)
            print(f"{name}: weak exact {row['weak_mean']['score']:.3f} partial {row['weak_mean']['partial_f1']:.3f} "
                  f"-> test exact {row['test_mean']['score']:.3f} partial {row['test_mean']['partial_f1']:.3f} "
                  f"({row['seconds']:.0f} s)", flush=True)
        del runner
    runs = {run.name for run in args.runs}
    cands = {k: v for k, v in res.data["systems"].items() if k.startswith("candidate ") and v["run"] in runs}
    fit = correlations(cands)
    res.put("fitness_vs_test", {"runs": [r.name for r in args.runs], "limit": args.limit, **fit})
    print(json.dumps(fit, indent=2))


if __name__ == "__main__":
    main()
