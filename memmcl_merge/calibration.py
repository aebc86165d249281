"""A label-prior correction for multiple-choice scoring: one log-likelihood offset per label, fitted
on held-out rows to the task's own metric, then added before the argmax on new rows.

A small model's answers lean to one label by an amount that swings with the training seed (on
tweet_offensive "offensive" is answered 174-281 times against 140 gold, benchmarks/RESULTS.md,
session 13); a macro-F1 pays for that lean. The offsets move only the decision between labels,
never the model, so every system can be corrected alike and compared before and after.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .lm_tasks import accuracy, macro_f1


def predict(lls: Sequence[Sequence[float]], offsets: Sequence[float] | None = None) -> list[int]:
    """Argmax label per row of choice log-likelihoods, after adding ``offsets`` (one per label)."""
    arr = np.asarray(lls, dtype=np.float64)
    if offsets is not None:
        arr = arr + np.asarray(offsets, dtype=np.float64)
    return [int(i) for i in arr.argmax(axis=1)] if len(arr) else []


def task_score(metric: str, gold: Sequence[int], pred: Sequence[int]) -> float:
    """The task's metric ("accuracy" or "macro_f1") of predicted against gold label indices."""
    items = list(zip(gold, pred, strict=True))
    if metric == "accuracy":
        return accuracy(items)
    if metric == "macro_f1":
        return macro_f1(items)
    raise ValueError(f"no label-prior correction for metric {metric!r} (accuracy or macro_f1 only)")


def fit_label_offsets(lls: Sequence[Sequence[float]], gold: Sequence[int], metric: str,
                      sweeps: int = 3) -> list[float]:
    """Offsets (label 0 held at 0) that maximise ``metric`` on these rows, by exact coordinate ascent.

    For one label the prediction of a row changes only where its offset crosses that row's margin to
    the best other label, so trying the midpoints between sorted margins tries every distinct
    outcome; among equal scores the offset nearest 0 is kept (the correction moves no more than the
    rows ask)."""
    arr = np.asarray(lls, dtype=np.float64)
    if arr.ndim != 2 or len(arr) != len(gold) or not len(arr):
        raise ValueError(f"need one row of choice log-likelihoods per gold label, got {arr.shape} for {len(gold)}")
    if not np.isfinite(arr).all():
        raise ValueError("choice log-likelihoods hold NaN or infinite values")
    n_labels = arr.shape[1]
    offsets = np.zeros(n_labels)
    best = task_score(metric, gold, predict(arr, offsets))
    for _ in range(sweeps):
        moved = False
        for k in range(1, n_labels):
            others = np.delete(arr + offsets, k, axis=1).max(axis=1)
            margins = np.unique(others - arr[:, k])  # label k wins a row once its offset passes this
            cands = np.concatenate([[margins[0] - 1.0], (margins[:-1] + margins[1:]) / 2, [margins[-1] + 1.0]])
            cands = cands[np.argsort(np.abs(cands), kind="stable")]
            for c in cands:
                trial = offsets.copy()
                trial[k] = c
                s = task_score(metric, gold, predict(arr, trial))
                if s > best + 1e-12:
                    best, offsets, moved = s, trial, True
        if not moved:
            break
    return [float(x) for x in offsets]
