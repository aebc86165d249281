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


def _rows(rng, quality, n):
    """n rows of one gold triplet each, predicted right with probability ``quality``."""
    gold = {("screen", "bright", "POS")}
    return [(gold if rng.random() < quality else {("keys", "loud", "NEG")}, gold) for _ in range(n)]


def test_weak_size_curve_ranks_better_with_more_rows_and_picks_the_best():
    import numpy as np

    rng = np.random.default_rng(0)
    quality = {f"c{i}": 0.2 + 0.1 * i for i in range(5)}  # c4 is best everywhere
    cands = {c: {split: {t: _rows(rng, q, n) for t in ("lap", "res")} for split, n in (("dev", 400), ("test", 400))}
             for c, q in quality.items()}
    curve = absa_fitness.weak_size_curve(cands, [4, 400], draws=60)
    small, full = curve["by_size"]["4"], curve["by_size"]["400"]
    assert curve["candidates"] == sorted(quality)
    assert max(curve["dev_f1"], key=curve["dev_f1"].get) == "c4"  # whole dev, the best candidate
    assert full["spearman_mean"] > 0.9 and full["spearman_mean"] > small["spearman_mean"] + 0.2
    assert full["picked_f1"] == pytest.approx(curve["best_test_f1"])
    assert small["picked_f1"] < full["picked_f1"]
    assert curve["test_half"]["spearman_mean"] > 0.8  # candidates this far apart: the test ranks them
    assert curve["dev_half"]["spearman_mean"] > 0.8


def test_weak_size_curve_reports_a_dev_split_that_ranks_the_other_way():
    import numpy as np

    rng = np.random.default_rng(1)
    # dev quality runs against test quality: negative ranks, and the weak set picks the worst
    cands = {f"c{i}": {"dev": {"t": _rows(rng, 0.7 - 0.1 * i, 300)}, "test": {"t": _rows(rng, 0.2 + 0.1 * i, 300)}}
             for i in range(5)}
    curve = absa_fitness.weak_size_curve(cands, [300], draws=10)
    assert curve["by_size"]["300"]["spearman_mean"] < -0.8
    assert curve["by_size"]["300"]["picked_f1"] == pytest.approx(min(curve["test_f1"].values()), abs=1e-4)
    assert curve["dev_half"]["spearman_mean"] > 0.8  # dev agrees with itself, not with test


def test_gate_keeps_the_start_against_noise_and_lets_a_clear_winner_through():
    import numpy as np

    rng = np.random.default_rng(2)
    # "c0 -1.0" is the start point; c1-c3 are as good as it (noise only), c4 is far better
    quality = {"c0 -1.0": 0.4, "c1": 0.4, "c2": 0.4, "c3": 0.4, "c4": 0.8}
    cands = {c: {split: {"t": _rows(rng, q, 300)} for split in ("dev", "test")} for c, q in quality.items()}
    gate = absa_fitness.gate_curve(cands, "c0 -1.0", [200], draws=40, levels=(0.9,), boots=200)
    rules = gate["by_size"]["200"]
    best_test = max(absa_fitness.counts_f1(absa_fitness.row_counts(cands[c]["test"]["t"]).sum(0)) for c in cands)
    assert rules["best"]["test_f1"] == pytest.approx(best_test)  # c4 is found on every draw
    assert rules["gate_0.9"]["test_f1"] == pytest.approx(best_test) and rules["gate_0.9"]["kept_start"] == 0.0

    # without c4, the plain winner is whichever noise twin leads the draw; the gate mostly keeps the start
    twins = {c: v for c, v in cands.items() if c != "c4"}
    rules = absa_fitness.gate_curve(twins, "c0 -1.0", [32], draws=60, levels=(0.9,), boots=200)["by_size"]["32"]
    assert rules["best"]["kept_start"] < 0.5 < rules["gate_0.9"]["kept_start"]
    assert rules["gate_0.9"]["test_f1_sd"] < rules["best"]["test_f1_sd"]
