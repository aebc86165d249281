"""The issue's bar as `benchmarks/run_benchmark.py bar` computes it, on a made-up results file (no model
runs): wins against each compared system, experts kept at 95%, and the variants of the comparator."""

import argparse
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import run_benchmark as rb

TASKS = ["a", "b", "c"]


def system(*scores, **extra):
    return {"scores": {t: {"score": s} for t, s in zip(TASKS, scores)}, **extra}


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setattr(rb, "RESULTS", tmp_path)
    rows = {f"expert:{t} (own task)": system(*[0.5] * 3) for t in TASKS}
    rows.update({name: system(0.1, 0.1, 0.1) for name in rb.COMPARED if name != "multitask SFT"})
    rows["multitask SFT"] = system(0.5, 0.6, 0.7)
    rows["multitask SFT, training seed 1"] = system(0.5, 0.4, 0.7)  # seed mean: 0.5, 0.5, 0.7
    rows["multitask SFT, 3 epochs"] = system(0.7, 0.7, 0.7)
    rows["MEM-MCL run"] = system(0.6, 0.55, 0.6)  # beats seed 0 on a only, the seed mean on a and b
    rows["MEM-MCL run, experts 3 epochs"] = system(0.6, 0.55, 0.6, model="/r/evolve_e3/final", own_experts={
        t: {"score": {"score": 0.7}} for t in TASKS})  # its own, stronger experts: none kept at 95%
    # a curriculum variant from that run's merge (curriculum_variant.py --run): held to the same experts
    rows["MEM-MCL run, experts 3 epochs, curriculum x3"] = system(0.7, 0.67, 0.5, model="/r/evolve_e3/variants/x3")
    rows["MEM-MCL run, other run"] = system(0.7, 0.67, 0.5, model="/r/evolve_e3b/final")  # not that run's

    def run(only, expert_seeds=""):
        (tmp_path / "r.json").write_text(json.dumps({"meta": {}, "systems": rows}))
        rb.step_bar(argparse.Namespace(results="r", only=only, expert_seeds=expert_seeds))
        return json.loads((tmp_path / "r_bar.json").read_text())

    return run


def test_bar_counts_wins_and_kept_experts(results):
    out = results("MEM-MCL run")["runs"]["MEM-MCL run"]
    assert out["wins"]["multitask SFT"] == 1 and out["lost_to_multitask"] == ["b", "c"]
    assert out["wins"]["multitask SFT, mean of 2 training seeds"] == 2
    assert out["kept"] == 3 and out["not_kept"] == {}
    assert out["bar_met"] is False  # 1 of 3 against the multitask SFT
    assert out["bar_met_against_multitask_seed_mean"] is True  # 2 of 3 against its seed mean
    assert out["bar_met_against multitask SFT, 3 epochs"] is False


def test_run_with_its_own_experts_is_held_to_them(results):
    runs = results("experts 3 epochs,other run")["runs"]
    out = runs["MEM-MCL run, experts 3 epochs"]
    assert out["kept"] == 0 and set(out["not_kept"]) == set(TASKS)
    assert out["bar_met_against_multitask_seed_mean"] is False
    # built from that run's merge: held to its experts (0.7; c at 0.5 is 71%), not the benchmark's (0.5)
    assert runs["MEM-MCL run, experts 3 epochs, curriculum x3"]["not_kept"] == {"c": 0.7143}
    assert runs["MEM-MCL run, other run"]["not_kept"] == {}  # another run folder: the benchmark's experts
    # a mean over runs on the same experts is held to them; over runs on other experts, to the benchmark's
    assert results("experts 3 epochs")["runs"]["mean of 2 runs"]["not_kept"] == {"a": 0.9286, "b": 0.8714, "c": 0.7857}
    assert runs["mean of 3 runs"]["not_kept"] == {}


def test_longer_multitask_is_averaged_over_its_training_seeds(results, tmp_path):
    assert "multitask SFT, 3 epochs, mean of 2 training seeds" not in results("MEM-MCL run")["compared_means"]
    data = json.loads((tmp_path / "r.json").read_text())
    data["systems"]["multitask SFT, 3 epochs, training seed 1"] = system(0.4, 0.3, 0.4)  # mean 0.55, 0.5, 0.55
    (tmp_path / "r.json").write_text(json.dumps(data))
    rb.step_bar(argparse.Namespace(results="r", only="MEM-MCL run"))
    out = json.loads((tmp_path / "r_bar.json").read_text())
    assert out["compared_means"]["multitask SFT, 3 epochs, mean of 2 training seeds"] == pytest.approx(0.5333, abs=1e-4)
    run = out["runs"]["MEM-MCL run"]
    assert run["wins"]["multitask SFT, 3 epochs"] == 0 and run["bar_met_against multitask SFT, 3 epochs"] is False
    assert run["wins"]["multitask SFT, 3 epochs, mean of 2 training seeds"] == 3
    assert run["bar_met_against multitask SFT, 3 epochs, mean of 2 training seeds"] is True


def test_bar_also_judges_kept_against_the_seed_mean_of_re_seeded_experts(results, tmp_path):
    # the run's experts (3 epochs) score 0.7; task c's expert again with seeds 1 and 2: 0.4, 0.4
    seeds = {"c, training seed 0": {"scores": {"c": {"score": 0.7}}},  # the held expert itself: not counted twice
             "c, training seed 1": {"scores": {"c": {"score": 0.4}}},
             "c, training seed 2": {"scores": {"c": {"score": 0.4}}}}
    (tmp_path / "seeds.json").write_text(json.dumps({"meta": {}, "systems": seeds}))
    out = results("experts 3 epochs, curriculum x3", expert_seeds="seeds")["runs"]
    run = out["MEM-MCL run, experts 3 epochs, curriculum x3"]  # scores 0.7, 0.67, 0.5
    assert run["not_kept"] == {"c": 0.7143} and run["kept"] == 2  # against the held experts: unchanged
    assert run["expert_seed_means"] == {"c": pytest.approx(0.5)}
    assert run["kept_against_expert_seed_means"] == 3 and run["not_kept_against_expert_seed_means"] == {}
    with pytest.raises(SystemExit, match="no results file"):
        results("experts 3 epochs", expert_seeds="missing")


def test_bar_names_an_empty_selection(results):
    with pytest.raises(SystemExit, match="selects no MEM-MCL run"):
        results("nothing like it")


def test_adopt_copies_rows_and_the_runs_own_experts(tmp_path, monkeypatch):
    monkeypatch.setattr(rb, "RESULTS", tmp_path)
    own = {t: {"score": {"score": 0.7}, "eval_seconds": 1.0, "train": {"folder": f"x/{t}"}} for t in TASKS}
    src = {"multitask SFT": system(0.5, 0.6, 0.7, eval_seconds=2.0),
           "MEM-MCL run, experts 3 epochs": system(0.6, 0.55, 0.6, own_experts=own, eval_seconds=2.0),
           "baseline ties": system(0.1, 0.1, 0.1, eval_seconds=2.0)}
    (tmp_path / "src.json").write_text(json.dumps({"meta": {}, "systems": src}))
    (tmp_path / "dst.json").write_text(json.dumps({"meta": {}, "systems": {"multitask SFT": system(0, 0, 0)}}))
    rb.step_adopt(argparse.Namespace(results="dst", source="src", only="multitask,experts 3 epochs"))
    rows = json.loads((tmp_path / "dst.json").read_text())["systems"]
    assert rows["multitask SFT"]["scores"]["a"]["score"] == 0  # already there: kept, not overwritten
    assert rows["MEM-MCL run, experts 3 epochs"]["from"] == "src.json" and "baseline ties" not in rows
    assert rows["expert:b (own task)"]["scores"] == {"b": {"score": 0.7}}
    with pytest.raises(SystemExit, match="selects no row"):
        rb.step_adopt(argparse.Namespace(results="dst", source="src", only="nothing"))
    assert "versions" not in rows["MEM-MCL run, experts 3 epochs"]  # copied as measured elsewhere


def test_a_measured_row_records_the_package_versions(tmp_path, monkeypatch):
    """A rebuild under other versions can differ (RESULTS.md, session 39): every row put says which."""
    monkeypatch.setattr(rb, "RESULTS", tmp_path)
    rb.Results("r").put("run", {"model": "m"})
    rb.Results("r").put("own", {"model": "m", "versions": {"torch": "x"}})
    rows = json.loads((tmp_path / "r.json").read_text())["systems"]
    import torch

    assert rows["run"]["versions"]["torch"] == torch.__version__
    assert {"transformers", "mergekit", "lm-eval"} <= set(rows["run"]["versions"])
    assert rows["own"]["versions"] == {"torch": "x"}


def test_a_row_scored_in_another_dtype_than_the_files_is_refused(tmp_path, monkeypatch):
    """A CPU without native bf16 scores in float32 (RESULTS.md session 50): such a row would not
    compare with a bf16 file's rows, so put refuses it and leaves the file as it was; a file of this
    machine's dtype, a new file (which then records it), and adopted rows (stamp=False) are taken."""
    import torch

    machine_dtype = rb.eval_dtype
    monkeypatch.setattr(rb, "RESULTS", tmp_path)
    monkeypatch.setattr(rb, "eval_dtype", lambda: torch.float32)
    rb.Results("bf16").meta(dtype="torch.bfloat16")
    before = (tmp_path / "bf16.json").read_text()
    with pytest.raises(SystemExit, match=r"scored in torch.bfloat16, this machine scores in torch.float32"):
        rb.Results("bf16").check_dtype()
    with pytest.raises(SystemExit, match="pass another --results file"):
        rb.Results("bf16").put("run", {"model": "m"})
    assert (tmp_path / "bf16.json").read_text() == before
    rb.Results("bf16").put("adopted", {"model": "m"}, stamp=False)
    rb.Results("f32").meta(dtype="torch.float32")
    rb.Results("f32").put("run", {"model": "m"})
    rb.Results("none").put("run", {"model": "m"})
    assert [list(json.loads((tmp_path / f"{n}.json").read_text())["systems"]) for n in ("bf16", "f32", "none")] == [
        ["adopted"], ["run"], ["run"]]
    assert json.loads((tmp_path / "none.json").read_text())["meta"]["dtype"] == "torch.float32"  # a new file takes it
    monkeypatch.setattr(rb, "eval_dtype", lambda: torch.bfloat16)
    with pytest.raises(SystemExit, match=r"scored in torch.float32, this machine scores in torch.bfloat16.*"
                       "MEMMCL_AUTO_DTYPE=float32"):
        rb.Results("none").put("later", {"model": "m"})
    # MEMMCL_AUTO_DTYPE lets any machine go on with a file's series in its dtype
    monkeypatch.setattr(rb, "eval_dtype", machine_dtype)
    monkeypatch.setenv("MEMMCL_AUTO_DTYPE", "float32")
    assert rb.Results("f32").check_dtype() == "torch.float32"
    monkeypatch.setenv("MEMMCL_AUTO_DTYPE", "bfloat16")
    assert rb.Results("bf16").check_dtype() == "torch.bfloat16"
    with pytest.raises(SystemExit, match="MEMMCL_AUTO_DTYPE=float32"):
        rb.Results("f32").check_dtype()


def test_only_selects_by_word_or_by_exact_name():
    """--only 'multitask SFT' takes every multitask variant; '=multitask SFT' that system alone."""
    names = ["multitask SFT", "multitask SFT, training seed 1", "multitask SFT, 3 epochs", "base zero-shot"]

    def chosen(only):
        return [n for n in names if rb._selected(argparse.Namespace(only=only), n)]

    assert chosen("") == names
    assert chosen("multitask SFT") == names[:3]
    assert chosen("=multitask SFT") == ["multitask SFT"]
    assert chosen("=multitask SFT, training seed 1,zero") == ["multitask SFT, training seed 1", "base zero-shot"]
    assert chosen("=multitask") == []


def test_console_script_is_found_beside_the_interpreter_or_on_path(tmp_path, monkeypatch):
    """The environment's own mergekit-yaml first (a venv); else PATH (pip install --target)."""
    here = Path(sys.executable).parent / "mergekit-yaml"
    if here.is_file():
        assert rb.console_script("mergekit-yaml") == str(here)
    tool = tmp_path / "memmcl-test-tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert rb.console_script("memmcl-test-tool") == str(tool)


def test_report_only_adds_systems_to_the_table(tmp_path, monkeypatch):
    """report shows the core systems; --only adds others (a series' own MEM-MCL runs) to table and chart."""
    monkeypatch.setattr(rb, "RESULTS", tmp_path)
    scores = {t: {"score": 0.5} for t in ("sst2", "tweet_irony")}
    row = {"scores": scores, "means": {"SC": 0.5, "MAST": 0.5, "all": 0.5}, "eval_seconds": 1.0}
    (tmp_path / "r.json").write_text(json.dumps({"meta": {}, "systems": {
        "multitask SFT": row, "MEM-MCL run, curriculum x3": row, "multitask SFT, 3 epochs": row}}))

    def table_head(only):
        rb.step_report(argparse.Namespace(results="r", only=only))
        return next(line for line in (tmp_path / "r_tables.md").read_text().splitlines() if line.startswith("| task"))

    assert "MEM-MCL run" not in table_head("") and "3 epochs" not in table_head("")
    head = table_head("curriculum x3")
    assert "MEM-MCL run, curriculum x3" in head and "multitask SFT, 3 epochs" not in head
    assert (tmp_path / "r.png").is_file()


def test_seed_test_tells_a_steady_difference_from_one_inside_the_seed_spread(results, tmp_path):
    """Two MEM-MCL runs (seeds) against the multitask SFT's two seeds: a wins on both seeds by far
    more than either side moves (a Welch win), b and c differ by less than the seeds move (ties)."""
    results("MEM-MCL run")  # writes r.json
    data = json.loads((tmp_path / "r.json").read_text())
    rows = data["systems"]
    rows["multitask SFT"] = system(0.50, 0.60, 0.60)
    rows["multitask SFT, training seed 1"] = system(0.51, 0.40, 0.40)
    rows["MEM-MCL seed run, seed 0"] = system(0.70, 0.55, 0.62)
    rows["MEM-MCL seed run, seed 1"] = system(0.71, 0.45, 0.38)
    (tmp_path / "r.json").write_text(json.dumps(data))
    rb.step_bar(argparse.Namespace(results="r", only="seed run"))
    test = json.loads((tmp_path / "r_bar.json").read_text())["runs"]["mean of 2 runs"]["seed_tests"][
        "multitask SFT, mean of 2 training seeds"]
    assert test["ours"] == ["MEM-MCL seed run, seed 0", "MEM-MCL seed run, seed 1"]
    assert test["wins"] == ["a"] and test["losses"] == [] and test["ties"] == 2
    assert test["per_task"]["a"]["difference"] == pytest.approx(0.2) and test["per_task"]["a"]["p"] < 0.05
    assert test["per_task"]["b"]["p"] > 0.5
    assert test["positive"] == 1  # b and c: equal means (0.50), neither positive
    assert test["mean_difference"] == pytest.approx(0.2 / 3, abs=1e-4) and test["mean_p"] > 0.05
    assert 0 < test["sign_p"] <= 1 and 0 < test["wilcoxon_p"] <= 1
    # one MEM-MCL run has no spread of its own: no seed test
    rb.step_bar(argparse.Namespace(results="r", only="seed run, seed 0"))
    assert "seed_tests" not in json.loads((tmp_path / "r_bar.json").read_text())["runs"]["MEM-MCL seed run, seed 0"]


def test_seed_test_reads_constant_sides_as_equal_or_as_a_steady_difference():
    rows = {"x0": system(0.5, 0.6, 0.1), "x1": system(0.5, 0.6, 0.3), "y0": system(0.5, 0.4, 0.2), "y1": system(0.5, 0.4, 0.2)}
    test = rb.seed_test(rows, ["x0", "x1"], ["y0", "y1"], TASKS)
    assert test["per_task"]["a"] == {"difference": 0.0, "p": 1.0}  # same score on every seed of both
    assert test["per_task"]["b"]["p"] == 0.0 and test["wins"] == ["b"]  # 0.6 against 0.4 on every seed
    assert test["per_task"]["c"]["difference"] == 0.0 and test["ties"] == 2
    with pytest.raises(ValueError, match="two or more runs a side"):  # one run has no spread to test
        rb.seed_test(rows, ["x0"], ["y0", "y1"], TASKS)


def test_seed_runs_without_their_seed_0_run_are_pooled(results, tmp_path):
    """A file of some seeds only (the calibrated file of the models still on disk) still gets the
    longer multitask SFT's seed mean and the seed test against it."""
    results("MEM-MCL run")
    data = json.loads((tmp_path / "r.json").read_text())
    rows = data["systems"]
    del rows["multitask SFT, 3 epochs"]
    rows["multitask SFT, 3 epochs, training seed 1"] = system(0.4, 0.3, 0.4)
    rows["multitask SFT, 3 epochs, training seed 2"] = system(0.5, 0.4, 0.5)
    rows["MEM-MCL run, seed 1"] = system(0.6, 0.55, 0.6)
    (tmp_path / "r.json").write_text(json.dumps(data))
    rb.step_bar(argparse.Namespace(results="r", only="=MEM-MCL run,=MEM-MCL run, seed 1"))
    out = json.loads((tmp_path / "r_bar.json").read_text())
    assert "multitask SFT, 3 epochs" not in out["compared_means"]
    assert out["compared_means"]["multitask SFT, 3 epochs, mean of 2 training seeds"] == pytest.approx(0.4167, abs=1e-4)
    assert "multitask SFT, 3 epochs, mean of 2 training seeds" in out["runs"]["mean of 2 runs"]["seed_tests"]


def test_bar_reads_another_score_field_into_its_own_file(results, tmp_path):
    results("=MEM-MCL run")
    data = json.loads((tmp_path / "r.json").read_text())
    for task in TASKS:  # an uncorrected score beside each corrected one, as `calibrate` writes them
        data["systems"]["MEM-MCL run"]["scores"][task]["raw"] = 0.0
    (tmp_path / "r.json").write_text(json.dumps(data))
    rb.step_bar(argparse.Namespace(results="r", only="=MEM-MCL run", score_field="raw"))
    raw = json.loads((tmp_path / "r_bar_raw.json").read_text())["runs"]["MEM-MCL run"]
    assert raw["mean"] == 0.0 and raw["wins"]["multitask SFT"] == 0
    assert json.loads((tmp_path / "r_bar.json").read_text())["runs"]["MEM-MCL run"]["wins"]["multitask SFT"] == 1


def test_bar_verdict_names_each_multitask_comparator_when_the_one_epoch_run_is_absent(results, tmp_path, capsys):
    """A calibrated file holds only the longer multitask SFT's seeds: its verdict must be judged
    against them, not read as met because the one-epoch multitask SFT is missing."""
    results("MEM-MCL run")
    data = json.loads((tmp_path / "r.json").read_text())
    rows = data["systems"]
    for name in ("multitask SFT", "multitask SFT, training seed 1", "multitask SFT, 3 epochs"):
        del rows[name]
    rows["multitask SFT, 3 epochs, training seed 1"] = system(0.7, 0.7, 0.5)
    rows["multitask SFT, 3 epochs, training seed 2"] = system(0.7, 0.7, 0.5)  # MEM-MCL run wins c only
    (tmp_path / "r.json").write_text(json.dumps(data))
    capsys.readouterr()
    rb.step_bar(argparse.Namespace(results="r", only="=MEM-MCL run"))
    run = json.loads((tmp_path / "r_bar.json").read_text())["runs"]["MEM-MCL run"]
    assert run["bar_met"] is True  # the systems the issue names, all present here but the multitask SFT
    assert run["bar_verdicts"] == {"multitask SFT, 3 epochs, mean of 2 training seeds": False}
    printed = capsys.readouterr().out
    assert "bar not met against multitask SFT, 3 epochs, mean of 2 training seeds" in printed
    assert "bar met" not in printed


def test_soup_is_judged_against_the_multitask_soup_and_held_to_its_members_experts(results, tmp_path):
    """A MEM-MCL soup (soup_variant.py) lies outside any run folder: it is held to the experts its
    members share, and a multitask SFT soup is its comparator (the same training compute)."""
    results("MEM-MCL run")
    data = json.loads((tmp_path / "r.json").read_text())
    rows = data["systems"]
    rows["multitask SFT, 3 epochs, soup of 2 training seeds"] = system(0.65, 0.65, 0.65)
    rows["MEM-MCL soup"] = system(0.7, 0.67, 0.6, model="/r/soups/s", members=[
        "/r/evolve_e3/variants/x3", "/r/evolve_e3/variants/x3_seed_1"])
    rows["MEM-MCL soup, mixed"] = system(0.7, 0.67, 0.6, model="/r/soups/m", members=[
        "/r/evolve_e3/variants/x3", "/r/evolve_e3b/final"])  # members of two runs: the benchmark's experts
    (tmp_path / "r.json").write_text(json.dumps(data))
    rb.step_bar(argparse.Namespace(results="r", only="=MEM-MCL soup,=MEM-MCL soup, mixed", bar_out="r_bar_soups"))
    runs = json.loads((tmp_path / "r_bar_soups.json").read_text())["runs"]
    assert "MEM-MCL soup" not in json.loads((tmp_path / "r_bar.json").read_text())["runs"]  # the first selection stays
    soup = runs["MEM-MCL soup"]
    assert soup["wins"]["multitask SFT, 3 epochs, soup of 2 training seeds"] == 2
    assert soup["not_kept"] == {"c": 0.8571}  # held to the members' experts (0.7), not the benchmark's (0.5)
    assert soup["bar_met_against multitask SFT, 3 epochs, soup of 2 training seeds"] is False
    assert runs["MEM-MCL soup, mixed"]["not_kept"] == {}
    assert runs["MEM-MCL soup, mixed"]["bar_met_against multitask SFT, 3 epochs, soup of 2 training seeds"] is True


def test_results_of_two_steps_on_one_file_keep_each_others_rows(tmp_path, monkeypatch):
    """A long step (a curriculum run) and a short one (a soup) holding the same results file: each
    save changes only its own row, so the one that loaded the file first does not drop the other's."""
    monkeypatch.setattr(rb, "RESULTS", tmp_path)
    long_step, short_step = rb.Results("r"), rb.Results("r")
    short_step.put("soup", {"scores": {}})
    short_step.meta(machine="here")
    long_step.put("curriculum", {"scores": {}})
    saved = json.loads((tmp_path / "r.json").read_text())
    assert set(saved["systems"]) == {"soup", "curriculum"} and saved["meta"] == {"machine": "here", "dtype": str(rb.eval_dtype())}
    assert long_step.has("soup")


def test_two_steps_started_together_both_log_their_command(tmp_path, monkeypatch):
    """Two calibrate runs loaded the file at the same moment: each command line goes onto the list
    as the file holds it at save time, not onto the copy each loaded."""
    monkeypatch.setattr(rb, "RESULTS", tmp_path)
    rb.Results("r").meta(append={"commands": "python first"})
    a, b = rb.Results("r"), rb.Results("r")
    a.meta(split="test", append={"commands": "python a"})
    b.meta(append={"commands": "python b"})
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["meta"]["commands"] == ["python first", "python a", "python b"]


def _fake_label_shares(tmp_path, monkeypatch, on_evaluator=lambda: None):
    """label_shares on fakes: one task "a", two rows; each model folder name is the label it always
    answers; results file "r" holds systems "first" (pos) and "second" (neg). Returns the argument
    maker; ``on_evaluator`` runs when the step builds its evaluator (after its first check)."""
    import types

    import memmcl_merge.data as data_mod
    from memmcl_merge import evaluation

    monkeypatch.setattr(rb, "RESULTS", tmp_path)
    monkeypatch.setattr(rb, "eval_dtype", lambda: None)
    spec = types.SimpleNamespace(name="a", is_generative=False)
    monkeypatch.setattr(evaluation, "resolve_tasks", lambda tasks: [spec])
    monkeypatch.setattr(data_mod, "load_docs", lambda *a, **k: [{"label": "pos"}, {"label": "neg"}])

    class FakeEvaluator:
        sampling = None

        def __init__(self, *a, **k):
            on_evaluator()

        def wrap(self, model, tok):
            return model

        def predict(self, model):
            return {"a": [model] * 2}

    monkeypatch.setattr(evaluation, "Evaluator", FakeEvaluator)
    rb.Results("r").put("first", {"model": "pos"})
    rb.Results("r").put("second", {"model": "neg"})

    def args(only, split="test_500"):
        monkeypatch.setattr(sys, "argv", ["run_benchmark.py", "label_shares", "--only", only])
        return argparse.Namespace(results="r", only=only, extra=[], tasks="all", split=split, limit=500, data=".")

    return args


def test_label_shares_run_beside_another_keeps_both_counts(tmp_path, monkeypatch):
    """A label_shares run that starts while another is counting (one loaded the file before the other
    saved) keeps the other's command and counts: each save re-reads the file under the lock."""
    from memmcl_merge import models

    args = _fake_label_shares(tmp_path, monkeypatch)

    def load(folder, dtype=None):
        if folder == "pos":  # the first run is mid-way through its model when the second runs whole
            rb.step_label_shares(args("second"))
        return folder, None

    monkeypatch.setattr(models, "load_model_and_tokenizer", load)
    rb.step_label_shares(args("first"))
    saved = json.loads((tmp_path / "r_label_shares.json").read_text())
    assert saved["commands"] == ["python run_benchmark.py label_shares --only first",
                                 "python run_benchmark.py label_shares --only second"]
    assert saved["systems"] == {"first": {"model": "pos", "a": {"pos": 2}}, "second": {"model": "neg", "a": {"neg": 2}}}
    assert saved["gold"] == {"a": {"pos": 1, "neg": 1}}


def test_label_shares_refuses_a_file_another_split_started_meanwhile(tmp_path, monkeypatch):
    """A run on other rows that saves between this run's first check and its first save: this run
    stops at its save, under the lock, and leaves the other run's counts as they are (adding them up
    would mix two test sets)."""
    from memmcl_merge import models

    monkeypatch.setattr(models, "load_model_and_tokenizer", lambda folder, dtype=None: (folder, None))
    calls = []

    def other_run_starts():  # only while the run on test_500 builds its evaluator
        if not calls:
            calls.append(1)
            rb.step_label_shares(args("second", split="dev"))

    args = _fake_label_shares(tmp_path, monkeypatch, on_evaluator=other_run_starts)
    with pytest.raises(SystemExit, match="holds counts on dev limit 500, not on test_500 limit 500"):
        rb.step_label_shares(args("first"))
    saved = json.loads((tmp_path / "r_label_shares.json").read_text())
    assert saved["split"] == "dev" and list(saved["systems"]) == ["second"]
    assert saved["commands"] == ["python run_benchmark.py label_shares --only second"]
    assert saved["gold"] == {"a": {"pos": 1, "neg": 1}}


def test_curriculum_from_a_run_that_stopped_at_the_merge_is_held_to_its_experts(tmp_path):
    """evolve_variant.py --until-merge records no row; a curriculum_variant.py --run from that run
    carries the run's experts_own_scores.json in its own row, and the bar holds it to them."""
    import curriculum_variant as cv

    run = tmp_path / "evolve_e3c"
    run.mkdir()
    assert cv.own_experts_of(run) == {} and cv.own_experts_of(None) == {}
    own = {t: {"score": {"score": 0.8}, "eval_seconds": 1.0} for t in TASKS}
    (run / "experts_own_scores.json").write_text(json.dumps(own))
    row = system(0.8, 0.76, 0.7, model=str(run / "variants" / "x3"), **cv.own_experts_of(run))
    assert rb._held_to({"MEM-MCL from e3c": row}, "MEM-MCL from e3c") == own
    assert rb._held_to({"MEM-MCL from e3c": {**row, "own_experts": {}}}, "MEM-MCL from e3c") == {}


def test_bar_reads_the_score_field_of_a_rows_own_experts_too(results, tmp_path):
    """In a calibrated file a run's own experts carry a corrected score beside a raw one: the raw bar
    holds the raw run to the raw experts, the corrected bar to the corrected ones."""
    results("=MEM-MCL run, experts 3 epochs")
    data = json.loads((tmp_path / "r.json").read_text())
    for v in data["systems"]["MEM-MCL run, experts 3 epochs"]["own_experts"].values():
        v["score"]["raw"] = 0.5  # corrected 0.7: none kept; raw 0.5: all kept
    (tmp_path / "r.json").write_text(json.dumps(data))
    rb.step_bar(argparse.Namespace(results="r", only="=MEM-MCL run, experts 3 epochs", score_field="raw"))
    assert json.loads((tmp_path / "r_bar_raw.json").read_text())["runs"]["MEM-MCL run, experts 3 epochs"]["kept"] == 3
    rb.step_bar(argparse.Namespace(results="r", only="=MEM-MCL run, experts 3 epochs"))
    assert json.loads((tmp_path / "r_bar.json").read_text())["runs"]["MEM-MCL run, experts 3 epochs"]["kept"] == 0


def test_a_recorded_draw_is_copied_where_the_run_lacks_it_and_nothing_else(tmp_path):
    """evolve_variant.py --record/--replay: the own-task scores and each planned search's journal,
    fitness spec and member scores go across; a file the run holds already is not overwritten, and
    models or searches outside the plan are not copied."""
    import types

    import evolve_variant as ev

    cfg = types.SimpleNamespace(plan=lambda: [types.SimpleNamespace(key="stage1/SC"),
                                              types.SimpleNamespace(key="stage2/unified")])
    src, dst = tmp_path / "kept", tmp_path / "run"
    for rel in ("experts_own_scores.json", "evolve/stage1/SC/journal.jsonl", "evolve/stage1/SC/fitness.json",
                "evolve/stage2/unified/journal.jsonl", "evolve/stage1/OLD/journal.jsonl",
                "evolve/stage1/SC/cma_state.pkl", "stage1/SC/model.safetensors"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(f"kept {rel}")
    (dst / "evolve/stage1/SC").mkdir(parents=True)
    (dst / "evolve/stage1/SC/fitness.json").write_text("the run's own")
    copied = ev.copy_draw(cfg, src, dst)
    assert copied == ["experts_own_scores.json", "evolve/stage1/SC/journal.jsonl", "evolve/stage2/unified/journal.jsonl"]
    assert (dst / "evolve/stage1/SC/fitness.json").read_text() == "the run's own"
    assert (dst / "evolve/stage2/unified/journal.jsonl").read_text() == "kept evolve/stage2/unified/journal.jsonl"
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file()) == sorted(
        copied + ["evolve/stage1/SC/fitness.json"])
