"""A paired bootstrap over test rows: how much of a difference between two systems the test rows'
own sampling error can make, from the answers each system gave per row (no model run).

Every system is scored on the same rows, so one resample of the rows (drawn with replacement) is
scored for every system at once and the difference kept; the spread of those differences is the
sampling error of the test set the seed test (run_benchmark.py ``seed_test``) leaves out. A system of
several runs (training seeds) is their mean on each resample; with ``seeds_too`` each resample also
draws its runs with replacement (the same runs for every task: a run is one model), so the interval
holds both the rows' and the seeds' error. With 2-3 runs a side that draw understates the seed spread
a little (by a factor (k-1)/k in variance), so those intervals err on the narrow side.

Scores per resample come from per-label counts weighted by how often each row was drawn, so 2000
resamples of 500 rows cost a few matrix products per task instead of a million metric calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Answers = tuple[np.ndarray, np.ndarray]  # (gold, predicted) label indices, one per test row


def resampled_scores(metric: str, gold: np.ndarray, pred: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The task's metric on each resample: ``counts`` (resamples x rows) says how often each row was
    drawn. Equals ``calibration.task_score`` on the rows drawn (macro-F1 over the labels a resample
    holds in gold or predictions, as there)."""
    gold, pred = np.asarray(gold), np.asarray(pred)
    counts = np.asarray(counts, dtype=np.float64)
    if metric == "accuracy":
        return counts @ (gold == pred) / counts.sum(axis=1)
    if metric != "macro_f1":
        raise ValueError(f"no paired bootstrap for metric {metric!r} (accuracy or macro_f1 only)")
    f1s, present = [], []
    for label in np.union1d(gold, pred):
        is_gold, is_pred = gold == label, pred == label
        tp = counts @ (is_gold & is_pred)
        wrong = counts @ (is_gold ^ is_pred)  # false positives + false negatives
        with np.errstate(invalid="ignore", divide="ignore"):
            f1s.append(np.where(tp > 0, 2 * tp / (2 * tp + wrong), 0.0))
        present.append(tp + wrong > 0)
    f1, seen = np.array(f1s), np.array(present)
    return (f1 * seen).sum(axis=0) / seen.sum(axis=0)


def _interval(diffs: np.ndarray, observed: float, level: float) -> dict:
    lo, hi = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    # two-sided: twice the smaller share of resamples on one side of no difference
    p = min(1.0, 2 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))))
    return {"difference": round(observed, 4), "low": round(float(lo), 4), "high": round(float(hi), 4), "p": round(p, 4)}


def _side(runs: Sequence[Mapping[str, Answers]], pick: np.ndarray, task: str, metric: str,
          counts: np.ndarray) -> tuple[np.ndarray, float]:
    """Each resample's mean over the runs ``pick`` (resamples x runs) draws for it, and the mean
    over all runs on the test rows themselves."""
    scores = np.array([resampled_scores(metric, *run[task], counts) for run in runs])  # runs x resamples
    on_test = np.mean([resampled_scores(metric, *run[task], np.ones((1, counts.shape[1])))[0] for run in runs])
    return scores[pick.T, np.arange(len(counts))].mean(axis=0), float(on_test)


def _resamples(rng: np.random.Generator, gold: np.ndarray, resamples: int) -> np.ndarray:
    """How often each test row is drawn, per resample (resamples x rows)."""
    return rng.multinomial(len(gold), np.full(len(gold), 1 / len(gold)), size=resamples)


def _same_rows(task: str, gold: np.ndarray, runs) -> None:
    if any(not np.array_equal(run[task][0], gold) for run in runs):
        raise ValueError(f"{task}: the systems were not scored on the same rows (gold labels differ)")


def paired_bootstrap(ours: Sequence[Mapping[str, Answers]], theirs: Sequence[Mapping[str, Answers]],
                     metrics: Mapping[str, str], resamples: int = 2000, seed: int = 0, seeds_too: bool = False,
                     level: float = 0.95) -> dict:
    """Ours (runs: task -> answers) against theirs on every task of ``metrics`` (task -> metric):
    per task and for the mean over these tasks the observed difference of the run means, its
    ``level`` interval and a two-sided p. A task is won or lost where the interval leaves out 0."""
    if not ours or not theirs:
        raise ValueError(f"a paired bootstrap needs runs on both sides, not {len(ours)} against {len(theirs)}")
    rng = np.random.default_rng(seed)
    picks = [rng.integers(0, len(side), size=(resamples, len(side))) if seeds_too
             else np.tile(np.arange(len(side)), (resamples, 1)) for side in (ours, theirs)]
    per_task, overall = {}, []
    for task, metric in metrics.items():
        gold = ours[0][task][0]
        _same_rows(task, gold, (*ours, *theirs))
        counts = _resamples(rng, gold, resamples)
        (a, a0), (b, b0) = (_side(side, pick, task, metric, counts) for side, pick in zip((ours, theirs), picks))
        per_task[task] = _interval(a - b, a0 - b0, level)
        overall.append((a - b, a0 - b0))
    won = [t for t, v in per_task.items() if v["low"] > 0]
    lost = [t for t, v in per_task.items() if v["high"] < 0]
    mean = _interval(np.mean([d for d, _ in overall], axis=0), float(np.mean([o for _, o in overall])), level)
    return {"resamples": resamples, "seeds_too": seeds_too, "level": level, "per_task": per_task, "wins": won,
            "losses": lost, "ties": len(per_task) - len(won) - len(lost), "mean": mean}


def expert_shares(ours: Sequence[Mapping[str, Answers]], experts: Mapping[str, Answers], metrics: Mapping[str, str],
                  resamples: int = 2000, seed: int = 0, level: float = 0.95, keep: float = 0.95) -> dict:
    """Per task of ``metrics`` that ``experts`` (task -> the expert's answers on its own task) holds:
    our mean over runs as a share of the expert's score, its ``level`` interval over resamples of the
    rows (paired: both scored on each draw) and the share of resamples under ``keep``."""
    rng = np.random.default_rng(seed)
    everyone = np.tile(np.arange(len(ours)), (resamples, 1))
    shares = {}
    for task, metric in metrics.items():
        if task not in experts:
            continue
        gold = experts[task][0]
        _same_rows(task, gold, ours)
        counts = _resamples(rng, gold, resamples)
        a, a0 = _side(ours, everyone, task, metric, counts)
        e, e0 = _side([experts], np.zeros((resamples, 1), dtype=int), task, metric, counts)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(e > 0, a / e, np.inf)
        lo, hi = np.quantile(ratio, [(1 - level) / 2, (1 + level) / 2])
        shares[task] = {"share": round(a0 / e0, 4) if e0 else None, "low": round(float(lo), 4),
                        "high": round(float(hi), 4), "under_keep": round(float(np.mean(ratio < keep)), 4)}
    return shares
