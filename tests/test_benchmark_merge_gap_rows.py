"""benchmarks/merge_gap_rows.py: how a measured gap is held against the test gap (no model run)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import merge_gap_rows

LABELS = ["sst2", "sst5", "tweet_irony"]  # aste_lap14 is the triplet task


def test_against_test_error_and_ranks_over_all_and_label_tasks():
    test = {"sst2": 0.0, "sst5": 0.10, "tweet_irony": 0.05, "aste_lap14": 0.30}
    same = merge_gap_rows.against_test(dict(test), test, LABELS)
    assert same == {"mean_abs_error": 0.0, "spearman_12": 1.0, "spearman_label_tasks": 1.0}
    # the label tasks reversed, the triplet task still the largest gap: the 12-task correlation stays
    # positive through the triplet task, the label tasks' does not
    flipped = {"sst2": 0.10, "sst5": 0.0, "tweet_irony": 0.05, "aste_lap14": 0.30}
    got = merge_gap_rows.against_test(flipped, test, LABELS)
    assert got["mean_abs_error"] == pytest.approx(0.05)
    assert got["spearman_label_tasks"] == pytest.approx(-1.0)
    assert 0 < got["spearman_12"] < 1


def test_against_test_averages_tied_ranks():
    # two gaps clipped to 0 on test: a tie, so either order of them in the measured gap ranks alike
    test = {"a": 0.0, "b": 0.0, "c": 0.2}
    one = merge_gap_rows.against_test({"a": 0.01, "b": 0.0, "c": 0.3}, test, list(test))
    other = merge_gap_rows.against_test({"a": 0.0, "b": 0.01, "c": 0.3}, test, list(test))
    assert one["spearman_12"] == other["spearman_12"] < 1
