"""benchmarks/absa_fitness.py: which candidates it scores again, and the rank correlations (no model run)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import absa_fitness


def _rec(gen, idx, fit, status="ok"):
    return {"generation": gen, "index": idx, "fitness": fit, "status": status}


def test_spread_covers_the_fitness_range_with_start_and_winner():
    records = [_rec(-1, 0, 0.30)] + [_rec(g, i, 0.20 + 0.01 * (6 * g + i)) for g in range(3) for i in range(6)]
    records.append(_rec(3, 0, -1e9, status="failed"))
    picked = absa_fitness.spread(records, 4)
    fits = [r["fitness"] for r in picked]
    assert len(picked) == 4 and len({(r["generation"], r["index"]) for r in picked}) == 4
    assert max(fits) == pytest.approx(0.37)  # the winner
    assert any(r["generation"] == -1 for r in picked)  # the start point, in place of the lowest
    assert all(r["status"] == "ok" for r in picked)
    assert absa_fitness.spread(records[:3], 5) == sorted(records[:3], key=lambda r: r["fitness"])


def test_correlations_rank_each_weak_metric_against_the_test_score():
    def cand(weak_exact, weak_partial, test_exact):
        return {"weak_mean": {"score": weak_exact, "partial_f1": weak_partial},
                "test_mean": {"score": test_exact, "partial_f1": test_exact + 0.2}}

    # partial credit orders the candidates as the test does; exact match reverses them
    cands = {str(i): cand(0.3 - 0.01 * i, 0.4 + 0.01 * i, 0.2 + 0.01 * i) for i in range(5)}
    fit = absa_fitness.correlations(cands)
    assert fit["candidates"] == 5
    assert fit["spearman_test_score_vs_weak_partial_f1"] == pytest.approx(1.0)
    assert fit["spearman_test_score_vs_weak_score"] == pytest.approx(-1.0)
    assert fit["spearman_test_partial_vs_weak_partial_f1"] == pytest.approx(1.0)
