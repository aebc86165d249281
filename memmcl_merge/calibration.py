"""A label-prior correction for multiple-choice scoring: one log-likelihood offset per label, fitted
on held-out rows for the task's metric (a class-weighted cross-entropy by default, or the metric
itself), then added before the argmax on new rows.

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


METHODS = ("nll", "metric")  # the first is the default


def fit_label_offsets(lls: Sequence[Sequence[float]], gold: Sequence[int], metric: str,
                      method: str = "nll") -> list[float]:
    """Offsets (label 0 held at 0) fitted on these rows for ``metric``.

    ``nll``: the offsets that make softmax(log-likelihoods + offsets) the best probability model of
    the gold labels (convex: one optimum, no search), with each row weighted by 1 / its label's
    count where the metric is a macro-F1 (every label weighs the same, as in that metric).
    ``metric``: the offsets that maximise the metric itself on these rows (exact coordinate
    ascent); it can fit the rows' noise, and a shift of label shares from these rows to the test
    rows costs it more (benchmarks/RESULTS.md, session 14)."""
    arr = np.asarray(lls, dtype=np.float64)
    if arr.ndim != 2 or len(arr) != len(gold) or not len(arr):
        raise ValueError(f"need one row of choice log-likelihoods per gold label, got {arr.shape} for {len(gold)}")
    if not np.isfinite(arr).all():
        raise ValueError("choice log-likelihoods hold NaN or infinite values")
    task_score(metric, [0], [0])  # names an unsupported metric before any work
    if method == "nll":
        return _fit_nll(arr, np.asarray(gold, dtype=int), balanced=metric == "macro_f1")
    if method == "metric":
        return _fit_metric(arr, gold, metric)
    raise ValueError(f"unknown calibration method {method!r}; one of {', '.join(METHODS)}")


def _fit_nll(arr: np.ndarray, gold: np.ndarray, balanced: bool, ridge: float = 1e-3, steps: int = 50) -> list[float]:
    """Newton's method on the (weighted) cross-entropy of softmax(arr + b) in b[1:]; the small ridge
    keeps the offsets finite when a label has no gold row here."""
    n, k = arr.shape
    counts = np.bincount(gold, minlength=k)
    w = 1.0 / counts[gold] if balanced else np.ones(n)
    w = w / w.sum()
    onehot = np.eye(k)[gold]
    b = np.zeros(k)
    for _ in range(steps):
        z = arr + b
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grad = (w[:, None] * (p - onehot)).sum(axis=0) + ridge * b
        hess = np.einsum("i,ij,il->jl", w, p, -p) + np.diag((w[:, None] * p).sum(axis=0)) + ridge * np.eye(k)
        step = np.linalg.solve(hess[1:, 1:], grad[1:])
        b[1:] -= step
        if np.abs(step).max() < 1e-8:
            break
    return [float(x) for x in b]


def _fit_metric(arr: np.ndarray, gold: Sequence[int], metric: str, sweeps: int = 3) -> list[float]:
    """For one label the prediction of a row changes only where its offset crosses that row's margin
    to the best other label, so trying the midpoints between sorted margins tries every distinct
    outcome; among equal scores the offset nearest 0 is kept (no more correction than the rows ask)."""
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
