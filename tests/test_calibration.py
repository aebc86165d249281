"""The label-prior correction (memmcl_merge/calibration.py): offsets fitted for a task's metric on one
set of rows undo a lean toward one label, and change nothing where there is none to undo."""

import numpy as np
import pytest

from memmcl_merge.calibration import fit_label_offsets, predict, task_score


def leaning_rows(n=300, lean=1.5, seed=0):
    """Three labels; the gold label's log-likelihood is 1 above the others plus noise, and label 2
    gets ``lean`` extra on every row: the model over-answers it."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 3, n)
    lls = rng.normal(0.0, 1.0, (n, 3))
    lls[np.arange(n), gold] += 1.0
    lls[:, 2] += lean
    return lls, gold.tolist()


@pytest.mark.parametrize("method", ["nll", "metric"])
@pytest.mark.parametrize("metric", ["macro_f1", "accuracy"])
def test_offsets_fitted_on_one_sample_undo_the_lean_on_another(metric, method):
    fit_lls, fit_gold = leaning_rows(seed=0)
    test_lls, test_gold = leaning_rows(seed=1)
    offsets = fit_label_offsets(fit_lls, fit_gold, metric, method=method)
    assert offsets[0] == 0.0 and len(offsets) == 3
    assert offsets[2] - (offsets[0] + offsets[1]) / 2 < -0.8  # label 2 pushed down, about by its lean
    raw = task_score(metric, test_gold, predict(test_lls))
    corrected = task_score(metric, test_gold, predict(test_lls, offsets))
    assert corrected > raw + 0.05  # on rows the offsets never saw
    assert predict(test_lls).count(2) > 1.5 * predict(test_lls, offsets).count(2)


def test_no_lean_means_offsets_near_zero_and_the_metric_fit_never_scores_below_raw():
    lls, gold = leaning_rows(lean=0.0)
    for method in ("nll", "metric"):
        assert max(abs(x) for x in fit_label_offsets(lls, gold, "macro_f1", method=method)) < 0.5
    offsets = fit_label_offsets(lls, gold, "macro_f1", method="metric")
    assert task_score("macro_f1", gold, predict(lls, offsets)) >= task_score("macro_f1", gold, predict(lls))


def test_nll_offsets_stay_finite_when_a_label_has_no_gold_row():
    lls, gold = leaning_rows(n=60)
    keep = [i for i, g in enumerate(gold) if g != 1]
    offsets = fit_label_offsets(lls[keep], [gold[i] for i in keep], "macro_f1")
    assert all(np.isfinite(offsets)) and offsets[1] < -1.0


def test_bad_input_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="one row"):
        fit_label_offsets([[0.0, 1.0]], [0, 1], "accuracy")
    with pytest.raises(ValueError, match="NaN"):
        fit_label_offsets([[0.0, float("nan")]], [0], "accuracy")
    with pytest.raises(ValueError, match="micro_f1"):
        fit_label_offsets([[0.0, 1.0]], [0], "micro_f1")
    with pytest.raises(ValueError, match="unknown calibration method 'mean'"):
        fit_label_offsets([[0.0, 1.0]], [0], "accuracy", method="mean")


def test_benchmark_calibrate_step_rescores_recorded_systems(tmp_path, monkeypatch, tiny_base_dir):
    """`run_benchmark.py calibrate` on a tiny model: the uncorrected score it recomputes from the
    logged log-likelihoods is the recorded lm-eval score, generated tasks are copied, a gone model
    is named and skipped, and a second call runs nothing again."""
    import argparse
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import run_benchmark as rb

    monkeypatch.setattr(rb, "RESULTS", tmp_path)
    monkeypatch.setattr(rb, "eval_dtype", lambda: "float32")
    tasks = ["sst2", "tweet_stance"]
    recorded = rb.score_model(str(tiny_base_dir), "embedded", "test", 24, tasks=tasks)["scores"]
    recorded["aste_lap14"] = {"score": 0.125}  # a generated task: copied, not rescored
    (tmp_path / "r.json").write_text(json.dumps({"meta": {}, "systems": {
        "tiny": {"model": str(tiny_base_dir), "scores": recorded},
        "gone": {"model": str(tmp_path / "nowhere"), "scores": recorded}}}))
    monkeypatch.setattr(rb, "ROOT", tmp_path)  # the log-likelihood cache: runs/calibration/r/
    args = argparse.Namespace(results="r", only="tiny,gone", data="embedded", split="test", limit=24,
                              fit_split="dev", fit_limit=24, calibration="nll")
    rb.step_calibrate(args)
    out = json.loads((tmp_path / "r_calibrated.json").read_text())
    assert list(out["systems"]) == ["tiny"]
    row = out["systems"]["tiny"]["scores"]
    for t in tasks:
        assert row[t]["raw"] == pytest.approx(recorded[t]["score"], abs=1e-9)
        assert len(row[t]["pred"]) == len(row[t]["gold"]) == 24
    assert set(row["tweet_stance"]["offsets"]) == {"against", "favor", "none"}
    assert row["aste_lap14"] == {"score": 0.125}
    seconds = out["systems"]["tiny"]["seconds"]
    rb.step_calibrate(args)
    assert json.loads((tmp_path / "r_calibrated.json").read_text())["systems"]["tiny"]["seconds"] == seconds
    # the other method refits from the kept log-likelihoods: the same uncorrected answers, no model run
    monkeypatch.setattr(rb, "score_model", None)
    monkeypatch.setattr("memmcl_merge.models.load_model_and_tokenizer", None)
    rb.step_calibrate(argparse.Namespace(**{**vars(args), "calibration": "metric"}))
    other = json.loads((tmp_path / "r_calibrated_metric.json").read_text())["systems"]["tiny"]["scores"]
    for t in tasks:
        assert other[t]["pred_raw"] == row[t]["pred_raw"] and other[t]["fit_score"] >= other[t]["fit_raw"]


def test_benchmark_calibrate_step_corrects_a_rows_own_experts(tmp_path, monkeypatch, tiny_base_dir):
    """A row that trained its own experts (``own_experts``) carries them into the calibrated file,
    each corrected on its own task, so a corrected bar holds the row to corrected experts; an expert
    whose folder is gone is left out (not mixed in uncorrected) and a generated task is copied."""
    import argparse
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import run_benchmark as rb

    monkeypatch.setattr(rb, "RESULTS", tmp_path)
    monkeypatch.setattr(rb, "ROOT", tmp_path)
    monkeypatch.setattr(rb, "eval_dtype", lambda: "float32")
    tasks = ["sst2", "tweet_stance"]
    recorded = rb.score_model(str(tiny_base_dir), "embedded", "test", 24, tasks=tasks)["scores"]
    own = {"sst2": {"score": recorded["sst2"], "train": {"folder": str(tiny_base_dir)}},
           "tweet_stance": {"score": recorded["tweet_stance"], "train": {"folder": str(tmp_path / "gone")}},
           "aste_lap14": {"score": {"score": 0.1}, "train": {"folder": str(tmp_path / "gone")}}}
    (tmp_path / "r.json").write_text(json.dumps({"meta": {}, "systems": {
        "run": {"model": str(tiny_base_dir), "scores": recorded, "own_experts": own, "members": ["/r/a", "/r/b"]}}}))
    args = argparse.Namespace(results="r", only="run", data="embedded", split="test", limit=24,
                              fit_split="dev", fit_limit=24, calibration="nll")
    rb.step_calibrate(args)
    row = json.loads((tmp_path / "r_calibrated.json").read_text())["systems"]["run"]
    assert set(row["own_experts"]) == {"sst2", "aste_lap14"}
    expert = row["own_experts"]["sst2"]["score"]
    assert expert["raw"] == pytest.approx(recorded["sst2"]["score"], abs=1e-9)
    # the same model as the row: the same corrected score and answers
    assert expert["score"] == row["scores"]["sst2"]["score"] and expert["pred"] == row["scores"]["sst2"]["pred"]
    assert row["own_experts"]["aste_lap14"]["score"] == {"score": 0.1}
    assert (tmp_path / "runs" / "calibration" / "r" / "own_experts").is_dir()  # one cache per expert folder
    assert row["members"] == ["/r/a", "/r/b"]  # a soup keeps its members: the bar holds it to their experts
