"""The paired bootstrap over test rows (benchmarks/paired.py, `run_benchmark.py paired`) on made-up
answers: no model runs."""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import paired
import run_benchmark as rb

from memmcl_merge.calibration import task_score


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1"])
def test_resampled_scores_equal_the_metric_on_the_rows_drawn(metric):
    rng = np.random.default_rng(1)
    gold, pred = rng.integers(0, 4, 60), rng.integers(0, 3, 60)  # label 3 never predicted
    counts = rng.multinomial(60, np.full(60, 1 / 60), size=5)
    counts[0] = 1  # the test rows themselves
    counts[1] = np.where(gold == 3, 0, counts[1])  # a resample without label 3 (in gold or answers)
    got = paired.resampled_scores(metric, gold, pred, counts)
    for c, score in zip(counts, got):
        drawn = np.repeat(np.arange(60), c)
        assert score == pytest.approx(task_score(metric, gold[drawn].tolist(), pred[drawn].tolist()))


def answers(gold, right_share, seed):
    """Answers right on about ``right_share`` of the rows, wrong (the next label) elsewhere."""
    rng = np.random.default_rng(seed)
    return gold, np.where(rng.random(len(gold)) < right_share, gold, (gold + 1) % 3)


def test_a_steady_difference_is_won_and_a_copy_is_level():
    gold = np.random.default_rng(0).integers(0, 3, 400)
    metrics = {"a": "accuracy", "b": "macro_f1"}
    strong = [{"a": answers(gold, 0.8, s), "b": answers(gold, 0.8, s + 10)} for s in (1, 2)]
    weak = [{"a": answers(gold, 0.5, s), "b": answers(gold, 0.5, s + 10)} for s in (3, 4)]
    out = paired.paired_bootstrap(strong, weak, metrics, resamples=500)
    assert out["wins"] == ["a", "b"] and out["losses"] == [] and out["mean"]["low"] > 0.2
    assert out["mean"]["p"] == 0.0
    level = paired.paired_bootstrap(strong, strong, metrics, resamples=500)
    assert level["ties"] == 2 and level["mean"] == {"difference": 0.0, "low": 0.0, "high": 0.0, "p": 1.0}
    # the same answers but on a few rows: a positive difference, within the rows' error
    near = paired.paired_bootstrap(strong[:1], [{"a": answers(gold, 0.79, 1), "b": strong[0]["b"]}], metrics,
                                   resamples=500)
    assert near["ties"] == 2 and near["per_task"]["a"]["difference"] > 0 and near["per_task"]["a"]["p"] > 0.05


def test_seeds_too_widens_the_interval_by_the_spread_between_runs():
    gold = np.random.default_rng(0).integers(0, 3, 300)
    metrics = {"a": "accuracy"}
    spread = [{"a": answers(gold, share, s)} for s, share in ((1, 0.55), (2, 0.75))]
    other = [{"a": answers(gold, 0.65, 3)}]
    rows = paired.paired_bootstrap(spread, other, metrics, resamples=1000)["per_task"]["a"]
    both = paired.paired_bootstrap(spread, other, metrics, resamples=1000, seeds_too=True)["per_task"]["a"]
    assert both["high"] - both["low"] > 2 * (rows["high"] - rows["low"])


def test_expert_shares_and_unequal_rows():
    gold = np.random.default_rng(0).integers(0, 3, 300)
    ours = [{"a": answers(gold, 0.6, 1)}]
    share = paired.expert_shares(ours, {"a": answers(gold, 0.8, 2)}, {"a": "accuracy"}, resamples=300)["a"]
    assert share["share"] == pytest.approx(task_score("accuracy", *ours[0]["a"]) / task_score("accuracy", *answers(gold, 0.8, 2)), abs=1e-4)
    assert share["high"] < 0.95 and share["under_keep"] == 1.0
    with pytest.raises(ValueError, match="a: the systems were not scored on the same rows"):
        paired.paired_bootstrap(ours, [{"a": (gold[::-1], gold[::-1])}], {"a": "accuracy"}, resamples=10)


def calibrated_row(gold, pred):
    return {"score": task_score("accuracy", gold.tolist(), pred.tolist()), "gold": "".join(map(str, gold)),
            "pred": "".join(map(str, pred)), "pred_raw": "".join(map(str, gold))}


def test_step_writes_each_multitask_comparator_and_names_a_file_without_answers(tmp_path, monkeypatch):
    monkeypatch.setattr(rb, "RESULTS", tmp_path)
    gold = np.random.default_rng(0).integers(0, 2, 200)
    systems = {"expert:sst2 (own task)": {"scores": {"sst2": calibrated_row(*answers(gold, 0.9, 9))}}}
    for i, share in enumerate((0.9, 0.88)):
        systems[f"MEM-MCL run, seed {i}"] = {"scores": {"sst2": calibrated_row(*answers(gold, share, i)),
                                                        "aste_lap14": {"score": 0.3}}}
    for name, seed in (("multitask SFT, 3 epochs", 5), ("multitask SFT, 3 epochs, training seed 1", 6),
                       ("multitask SFT, 3 epochs, soup of the 2 training seeds", 7)):
        systems[name] = {"scores": {"sst2": calibrated_row(*answers(gold, 0.6, seed))}}
    (tmp_path / "c.json").write_text(json.dumps({"meta": {}, "systems": systems}))
    args = argparse.Namespace(results="c", only="MEM-MCL run", resamples=300, bar_out="")
    rb.step_paired(args)
    out = json.loads((tmp_path / "c_paired.json").read_text())
    assert out["tasks"] == ["sst2"] and out["runs"] == ["MEM-MCL run, seed 0", "MEM-MCL run, seed 1"]
    assert set(out["against"]) == {"multitask SFT, 3 epochs", "multitask SFT, 3 epochs, soup of the 2 training seeds",
                                   "multitask SFT, 3 epochs, mean of 2 training seeds"}
    pooled = out["against"]["multitask SFT, 3 epochs, mean of 2 training seeds"]
    assert pooled["rows"]["wins"] == ["sst2"] and pooled["rows_and_runs"]["seeds_too"] is True
    assert 0.95 < out["expert_shares"]["sst2"]["share"] < 1.05
    # --score-field raw reads the uncorrected answers (all right here: every side level) into its own file
    rb.step_paired(argparse.Namespace(**{**vars(args), "score_field": "raw"}))
    raw = json.loads((tmp_path / "c_paired_raw.json").read_text())
    assert raw["field"] == "pred_raw" and raw["against"]["multitask SFT, 3 epochs"]["rows"]["mean"]["difference"] == 0.0
    for rec in systems.values():
        rec["scores"]["sst2"].pop("pred")
    (tmp_path / "c.json").write_text(json.dumps({"meta": {}, "systems": systems}))
    with pytest.raises(SystemExit, match="keeps no per-row answers"):
        rb.step_paired(args)


def test_against_compares_any_two_systems_named(tmp_path, monkeypatch):
    monkeypatch.setattr(rb, "RESULTS", tmp_path)
    gold = np.random.default_rng(0).integers(0, 2, 300)
    systems = {"stage-2 merge": {"scores": {"sst2": calibrated_row(*answers(gold, 0.6, 1))}},
               "stage-2 merge, other fitness": {"scores": {"sst2": calibrated_row(*answers(gold, 0.9, 2))}},
               "multitask SFT": {"scores": {"sst2": calibrated_row(*answers(gold, 0.95, 3))}}}
    (tmp_path / "c.json").write_text(json.dumps({"meta": {}, "systems": systems}))
    args = argparse.Namespace(results="c", only="=stage-2 merge, other fitness", against="=stage-2 merge",
                              resamples=300, bar_out="")
    rb.step_paired(args)  # neither name says MEM-MCL; the multitask SFT is left out
    out = json.loads((tmp_path / "c_paired.json").read_text())
    assert out["runs"] == ["stage-2 merge, other fitness"] and list(out["against"]) == ["stage-2 merge"]
    assert out["against"]["stage-2 merge"]["theirs"] == ["stage-2 merge"]
    assert out["against"]["stage-2 merge"]["rows"]["wins"] == ["sst2"]
    with pytest.raises(SystemExit, match="--against 'nothing' selects no other system"):
        rb.step_paired(argparse.Namespace(**{**vars(args), "against": "nothing"}))


def test_shares_are_of_the_runs_own_experts_when_they_have_them(tmp_path, monkeypatch):
    """A run with its own (calibrated) experts: our share is of those, not of the file's expert rows."""
    monkeypatch.setattr(rb, "RESULTS", tmp_path)
    gold = np.random.default_rng(0).integers(0, 2, 300)
    own = calibrated_row(*answers(gold, 0.6, 4))
    systems = {"expert:sst2 (own task)": {"scores": {"sst2": calibrated_row(*answers(gold, 0.95, 9))}},
               "MEM-MCL run": {"scores": {"sst2": calibrated_row(*answers(gold, 0.6, 1))},
                               "own_experts": {"sst2": {"score": own}}},
               "multitask SFT": {"scores": {"sst2": calibrated_row(*answers(gold, 0.6, 3))}}}
    (tmp_path / "c.json").write_text(json.dumps({"meta": {}, "systems": systems}))
    rb.step_paired(argparse.Namespace(results="c", only="=MEM-MCL run", resamples=300, bar_out=""))
    share = json.loads((tmp_path / "c_paired.json").read_text())["expert_shares"]["sst2"]["share"]
    assert 0.85 < share < 1.15  # against the file's 0.95 expert it would be near 0.63
