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

``--per-row`` (session 25) asks how many weak rows a ranking needs: it scores each picked candidate
(once per distinct genome) on the whole dev split and the test split with every row's triplets kept
(``<output_dir>/absa_rows/``), then draws weak sets of each ``--sizes`` from dev (``--draws`` times,
the same rows for every candidate in a draw, as a search sees them) and reports, per size, the Spearman
of the weak ranking with the test ranking and the test F1 of the candidate each draw's weak set picks.
A split-half draw of each split's rows gives the same figures for the split against itself: how far
apart the candidates are on it at all. ``--weak-from train`` scores one 128-row draw per task of the
train rows the experts do not train on instead of dev (``evolve.weak.split: train``), and the curve
(``weak_size_vs_test_train_unseen``; its ``dev_half`` is that draw against its own halves) draws from it.
``--per-row --gate`` (session 26) asks whether a significance-gated winner would do better: per draw,
the plain winner (best weak F1) against one kept only when a paired bootstrap over the draw's rows puts it
ahead of the start point in 80 / 90 / 95% of resamples (results key ``gate_vs_start``).
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


def row_items(rows: list[dict]) -> list[tuple[set, set]]:
    return [({tuple(t) for t in r["pred"]}, {tuple(t) for t in r["gold"]}) for r in rows]


def row_counts(items: list[tuple[set, set]]) -> np.ndarray:
    """Per row: (true positives, predicted + gold triplets); a subset's micro-F1 is 2 sum tp / sum n
    (lm_tasks.micro_f1 on those rows, as counts so that many subsets cost a few array sums)."""
    return np.array([(len(p & g), len(p) + len(g)) for p, g in items], dtype=float).reshape(-1, 2)


def counts_f1(counts: np.ndarray) -> np.ndarray:
    """Micro-F1 from summed counts (last axis: tp, n); 0 where nothing was predicted or gold."""
    return np.where(counts[..., 1] > 0, 2 * counts[..., 0] / np.maximum(counts[..., 1], 1e-12), 0.0)


def split_counts(cands: dict[str, dict], names: list[str], split: str) -> dict[str, np.ndarray]:
    """Per task (sorted): the candidates' row counts on ``split``, candidates x rows x 2."""
    return {t: np.stack([row_counts(cands[c][split][t]) for c in names]) for t in sorted(cands[names[0]][split])}


def mean_f1(counts: dict[str, np.ndarray], picks: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Per candidate: the mean over tasks of the micro-F1 on the picked rows of each task (all rows
    without ``picks``)."""
    return np.mean([counts_f1((c if picks is None else c[:, picks[t]]).sum(1)) for t, c in counts.items()], axis=0)


def weak_size_curve(cands: dict[str, dict], sizes: list[int], draws: int, seed: int = 0) -> dict:
    """Per weak-set size: how a weak set of that many dev rows per task ranks the candidates against
    their whole-test F1 (mean Spearman over draws, 10th-90th percentile), and the test F1 of the
    candidate it picks (``picked_f1``, mean over draws) next to the best and the mean candidate. ``cands[name]``:
    ``{"dev": {task: items}, "test": {task: items}}``."""
    names = sorted(cands)
    counts = {split: split_counts(cands, names, split) for split in ("dev", "test")}
    n_dev = {t: c.shape[1] for t, c in counts["dev"].items()}
    n_test = {t: c.shape[1] for t, c in counts["test"].items()}
    test, dev = mean_f1(counts["test"]), mean_f1(counts["dev"])
    rng = np.random.default_rng(seed)

    def summary(picks_of_draw, split, reference=test):
        """Ranks on ``split``'s picked rows against ``reference`` (whole-split F1s); ``picked_f1``: the
        reference F1 of the candidate each draw ranks first."""
        rhos, picked = [], []
        for _ in range(draws):
            weak = mean_f1(counts[split], picks_of_draw())
            rhos.append(spearman(weak, reference) if np.ptp(weak) > 0 else 0.0)
            picked.append(float(reference[np.flatnonzero(weak == weak.max())].mean()))  # ties: their mean
        return {"spearman_mean": float(np.mean(rhos)), "spearman_p10": float(np.percentile(rhos, 10)),
                "spearman_p90": float(np.percentile(rhos, 90)), "picked_f1": float(np.mean(picked))}

    out = {"candidates": names, "test_f1": dict(zip(names, test.round(4).tolist())),
           "dev_f1": dict(zip(names, np.round(dev, 4).tolist())),
           "best_test_f1": float(test.max()), "mean_test_f1": float(test.mean()), "draws": draws,
           "dev_rows": n_dev, "test_rows": n_test, "by_size": {}}
    for size in sizes:
        out["by_size"][str(size)] = summary(
            lambda size=size: {t: rng.choice(n, min(size, n), replace=False) for t, n in n_dev.items()}, "dev")
    # each split against itself: rank on one random half, compare with the whole split (a high figure
    # for both and a low one across them means the splits rank the candidates differently)
    out["test_half"] = summary(lambda: {t: rng.choice(n, n // 2, replace=False) for t, n in n_test.items()}, "test")
    out["dev_half"] = summary(lambda: {t: rng.choice(n, n // 2, replace=False) for t, n in n_dev.items()}, "dev", dev)
    return out


def gate_curve(cands: dict[str, dict], start: str, sizes: list[int], draws: int, levels=(0.8, 0.9, 0.95),
               boots: int = 400, seed: int = 0) -> dict:
    """A significance-gated winner against the plain one, per weak-set size: each draw of dev rows
    picks the candidate with the best weak F1 (``best``), and the gate keeps ``start`` instead unless a
    paired bootstrap over the draw's own rows finds that candidate ahead of it in at least ``level`` of
    the resamples. Per rule: the whole-test F1 of the pick (mean and spread over draws), the share of
    draws whose pick scores below the start point on test, and the share that keep the start."""
    names = sorted(cands)
    dev = split_counts(cands, names, "dev")
    test = mean_f1(split_counts(cands, names, "test"))
    s = names.index(start)
    rng = np.random.default_rng(seed)
    out = {"start": start, "start_test_f1": float(test[s]), "boots": boots, "draws": draws, "by_size": {}}
    for size in sizes:
        rules = {"best": [], **{f"gate_{lv}": [] for lv in levels}}
        for _ in range(draws):
            picks = {t: rng.choice(d.shape[1], min(size, d.shape[1]), replace=False) for t, d in dev.items()}
            best = int(np.argmax(mean_f1(dev, picks)))
            resampled = np.mean([counts_f1(dev[t][:, p[rng.integers(0, len(p), (boots, len(p)))]].sum(2))
                                 for t, p in picks.items()], axis=0)  # cand x boot, the same rows for all
            ahead = 1.0 if best == s else float(np.mean(resampled[best] > resampled[s]))
            rules["best"].append(best)
            for lv in levels:
                rules[f"gate_{lv}"].append(best if ahead >= lv else s)
        out["by_size"][str(size)] = {
            rule: {"test_f1": float(test[p].mean()), "test_f1_sd": float(test[p].std()),
                   "below_start": float(np.mean(test[p] < test[s] - 1e-12)), "kept_start": float(np.mean(p == s))}
            for rule, p in ((r, np.array(v)) for r, v in rules.items())}
    return out


def score_rows(evaluator, lm) -> dict[str, list[dict]]:
    """Every row's predicted and gold triplets, per task, in doc order."""
    from memmcl_merge.lm_tasks import process_triplets

    _, logged = evaluator.logged_samples(lm)
    out = {}
    for task, samples in logged.items():
        rows = []
        for s in samples:
            pred, gold = process_triplets(s["doc"], s["filtered_resps"])["score"]
            rows.append({"pred": sorted(map(list, pred)), "gold": sorted(map(list, gold))})
        out[task] = rows
    return out


def genome_key(params) -> str:
    return json.dumps(params, sort_keys=True)


def per_row(args, bench, res, journals) -> None:
    """``--per-row``: the rows of each distinct picked candidate on test and on the split weak sets
    are drawn from (``--weak-from dev``, or ``train``: 128 train rows per task the experts do not
    train on, the weak sets of ``evolve.weak.split: train``), then the weak-size curve."""
    from memmcl_merge.evaluation import Evaluator
    from memmcl_merge.evolve import SearchRunner, build_weak_sets, link_base
    from memmcl_merge.io import read_json, write_json
    from memmcl_merge.tasks import get_task

    store = bench.output_dir / "absa_rows"
    store.mkdir(parents=True, exist_ok=True)
    weak_side = "dev" if args.weak_from == "dev" else "train_unseen"
    seen: dict[str, str] = {}
    for run, journal in journals.items():
        cfg = bench.model_copy(update={"output_dir": run.resolve()})
        plan = next(p for p in cfg.plan() if p.key == KEY)
        records = [json.loads(line) for line in journal.read_text().splitlines()]
        picked = [r for r in spread(records, args.per_search) if genome_key(r["params"]) not in seen]
        for r in picked:
            seen[genome_key(r["params"])] = candidate_name(run, r)
        paths = {candidate_name(run, r): store / f"{candidate_name(run, r)}.json" for r in picked}
        on_disk = {name: read_json(path) if path.is_file() else {} for name, path in paths.items()}
        todo = [r for r in picked if not {weak_side, "test"} <= set(on_disk[candidate_name(run, r)])]
        if not todo:
            continue
        runner = SearchRunner(cfg, plan, link_base(cfg), cfg.output_dir / "weak")
        specs = [get_task(t) for t in plan.tasks]
        sources = {"dev": (str(args.data.resolve()), "dev"), "test": (str(args.data.resolve()), "test_500")}
        if weak_side == "train_unseen":
            weak = cfg.evolve.weak.model_copy(update={"split": "train", "size": 128})
            train_cfg = cfg.model_copy(update={"output_dir": store / "train_unseen",
                                               "evolve": cfg.evolve.model_copy(update={"weak": weak})})
            sources["train_unseen"] = (str(build_weak_sets(train_cfg, plan.tasks, progress=None)), "weak")
        evaluators = {side: Evaluator(specs, data=sources[side][0], split=sources[side][1],
                                      batch_size=cfg.evolve.batch_size) for side in (weak_side, "test")}
        lms = {side: ev.wrap(runner.model, runner.tok) for side, ev in evaluators.items()}
        for r in todo:
            name, t0 = candidate_name(run, r), time.perf_counter()
            row = on_disk[name]
            runner.apply(r["params"])
            for side in {weak_side, "test"} - set(row):
                row[side] = score_rows(evaluators[side], lms[side])
            row.update({"run": run.name, "generation": r["generation"], "index": r["index"],
                        "search_fitness": r["fitness"], "params": r["params"]})
            write_json(paths[name], row)
            print(f"{name}: rows of {weak_side} and test ({time.perf_counter() - t0:.0f} s)", flush=True)
        del runner, lms
    cands = {}
    for name in seen.values():
        saved_rows = read_json(store / f"{name}.json")
        cands[name] = {"dev": {t: row_items(rows) for t, rows in saved_rows[weak_side].items()},
                       "test": {t: row_items(rows) for t, rows in saved_rows["test"].items()}}
    if args.gate:
        start = next(n for n in sorted(cands) if n.endswith(" -1.0"))  # generation -1: a search's start point
        gate = gate_curve(cands, start, args.sizes, args.draws)
        res.put(f"gate_vs_start{'' if weak_side == 'dev' else '_train_unseen'}", {"runs": [r.name for r in journals],
                                                                                 **gate})
        print(json.dumps(gate, indent=2))
        return
    curve = weak_size_curve(cands, args.sizes, args.draws)
    key = "weak_size_vs_test" if weak_side == "dev" else "weak_size_vs_test_train_unseen"
    res.put(key, {"runs": [r.name for r in journals], "rows": str(store), "weak_from": weak_side, **curve})
    print(json.dumps({k: curve[k] for k in ("best_test_f1", "mean_test_f1", "by_size", "test_half", "dev_half")},
                     indent=2))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--per-search", type=int, default=5)
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--results", default="absa_fitness")
    ap.add_argument("--data", type=Path, default=rb.DEFAULT_DATA)
    ap.add_argument("--config", type=Path, default=rb.HERE / "absa_fitness.yml")
    ap.add_argument("--per-row", action="store_true", help="dev and test rows per candidate; the weak-size curve")
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[16, 32, 64, 128, 1000])
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--gate", action="store_true",
                    help="--per-row: a significance-gated winner (keep the start point unless a candidate beats it "
                         "in a paired bootstrap over the weak rows) against the plain best")
    ap.add_argument("--weak-from", choices=("dev", "train"), default="dev",
                    help="--per-row: the split weak sets are drawn from (train: rows the experts do not train on)")
    args = ap.parse_args(argv)

    from memmcl_merge.evaluation import Evaluator
    from memmcl_merge.evolve import SearchRunner, link_base
    from memmcl_merge.tasks import get_task

    res = rb.Results(args.results)
    res.check_dtype()
    bench = rb.bench_config(args)
    journals = {run: run / "evolve" / KEY / "journal.jsonl" for run in args.runs}
    for run, journal in journals.items():
        if not journal.is_file():
            raise SystemExit(f"{run}: no {journal.relative_to(run)} (not a finished ABSA search)")
    if args.per_row:
        return per_row(args, bench, res, journals)
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
