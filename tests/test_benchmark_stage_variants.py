"""benchmarks/stage_variants.py: the paired comparison of saved per-row answers (no model run)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import stage_variants


def _row(gold, right, rng):
    """A model's saved answers: each row right with probability ``right``, else another label."""
    pred = np.where(rng.random(len(gold)) < right, gold, (gold + 1) % 3)
    return {"scores": {"t": {"gold": "".join(map(str, gold)), "pred": "".join(map(str, pred))}}}


def test_compare_finds_the_better_winner_and_only_it():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 400)
    rows = {"start point": _row(gold, 0.5, rng), "finer": _row(gold, 0.8, rng), "coarser": _row(gold, 0.5, rng)}
    out = stage_variants.compare(rows, ["finer", "coarser", "start point"], "start point", {"t": "accuracy"})
    assert set(out) == {"finer", "coarser"}  # not the reference against itself
    assert out["finer"]["wins"] == ["t"] and out["finer"]["mean"]["difference"] > 0.2
    assert out["coarser"]["wins"] == [] and out["coarser"]["losses"] == []
    against_finer = stage_variants.compare(rows, ["finer", "coarser"], "finer", {"t": "macro_f1"})
    assert against_finer["coarser"]["losses"] == ["t"]


def test_each_variant_is_paired_with_the_first_of_its_weak_draw():
    draws = {"bench": 0, "finer": 0, "bench, seed 1": 1, "finer, seed 1": 1, "coarser, seed 2": 2}
    assert stage_variants.first_of_its_draw(draws) == {"finer": "bench", "finer, seed 1": "bench, seed 1"}
    assert stage_variants.first_of_its_draw({"a": 0, "b": 0}) == {"b": "a"}
