"""benchmarks/fitness_spread.py on a made-up search journal: no model runs."""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import fitness_spread


def test_a_metric_that_spreads_a_group_wider_gives_it_the_ranking(tmp_path):
    rng = np.random.default_rng(0)
    journal = tmp_path / "journal.jsonl"
    lines = []
    for i in range(20):
        # task a: accuracy barely moves, macro-F1 swings; task b (a macro-F1 task) moves the same under both
        a = {"score": 0.6 + 0.005 * rng.standard_normal(), "macro_f1": 0.5 + 0.1 * rng.standard_normal(), "p_gold": 0.5}
        b_val = 0.4 + 0.03 * rng.standard_normal()
        b = {"score": b_val, "macro_f1": b_val, "p_gold": 0.5}
        lines.append(json.dumps({"generation": i // 5, "index": i % 5, "status": "ok", "scores": {"a": a, "b": b}}))
    lines.append(json.dumps({"generation": 4, "index": 0, "status": "failed", "scores": {}}))
    journal.write_text("\n".join(lines))
    mix = fitness_spread.spread(journal, "mix", ["a"])
    macro = fitness_spread.spread(journal, "macro_mix", ["a"])
    assert mix["candidates"] == 20 and mix["other_sd"] == macro["other_sd"]
    assert macro["group_sd"] > 5 * mix["group_sd"]
    assert mix["group_share_of_fitness_variance"] < 0.2 and macro["group_share_of_fitness_variance"] > 0.8
