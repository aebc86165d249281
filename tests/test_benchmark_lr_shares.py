"""benchmarks/lr_shares.py: the within-task fit of scores on passes (no model run)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import lr_shares


def _settings(rows):
    """rows: per setting, {task: (passes, score)}."""
    return [{t: {"passes": p, "raw_seed_mean": y} for t, (p, y) in row.items()} for row in rows]


def test_within_task_fit_recovers_a_slope_that_task_levels_would_hide():
    # every task rises 0.02 per pass, from very different levels: a pooled fit across tasks would be
    # dominated by the levels (the hard task has the most passes and the lowest score)
    rows = [{"easy": (1.0, 0.90), "hard": (4.0, 0.30)},
            {"easy": (2.0, 0.92), "hard": (3.0, 0.28)},
            {"easy": (3.0, 0.94), "hard": (2.0, 0.26)}]
    fit = lr_shares.within_task_fit(_settings(rows), ["easy", "hard"], "passes")
    assert fit == {"slope_per_pass": pytest.approx(0.02), "r": pytest.approx(1.0), "points": 6}
    # one task falling as the other rises: the two cancel
    rows[0]["easy"], rows[2]["easy"] = (1.0, 0.94), (3.0, 0.90)
    fit = lr_shares.within_task_fit(_settings(rows), ["easy", "hard"], "passes")
    assert fit["slope_per_pass"] == pytest.approx(0.0) and fit["r"] == pytest.approx(0.0)


def test_within_task_fit_refuses_passes_that_never_vary():
    rows = [{"a": (3.0, 0.5)}, {"a": (3.0, 0.6)}]
    with pytest.raises(ValueError, match="no spread in passes"):
        lr_shares.within_task_fit(_settings(rows), ["a"], "passes")
