"""Curriculum plan and order, and the whole pipeline on tiny models: resume, report, model card."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from memmcl_merge.config import ConfigError, RunConfig, load_config
from memmcl_merge.curriculum import curriculum_rows, format_plan, plan_curriculum
from memmcl_merge.tasks import TASKS, TaskMeta


def _meta(task, words=10.0, entropy=1.0):
    spec = TASKS[task]
    return TaskMeta(spec.num_classes, spec.output_structure, words, entropy, 100)


def test_difficulty_plan_orders_tasks_and_shows_its_parts():
    cfg = RunConfig(tasks=["sst2", "sst5", "aste_lap14", "tweet_irony"])
    metas = {"sst2": _meta("sst2", 10), "sst5": _meta("sst5", 10, 2.0), "aste_lap14": _meta("aste_lap14", 20, 1.5),
             "tweet_irony": _meta("tweet_irony", 10)}
    signals = {"sst2": {"base": 0.9, "expert": 0.95, "merged": 0.94}, "tweet_irony": {"base": 0.2,
               "expert": 0.8, "merged": 0.3}}
    plan = plan_curriculum(cfg, metas, signals)
    order = [d.task for d in plan]
    assert order[0] == "sst2" and order[-1] == "aste_lap14"
    irony = next(d for d in plan if d.task == "tweet_irony")
    assert irony.parts["base_gap"] == pytest.approx(0.8) and irony.parts["merge_gap"] == pytest.approx(0.5)
    assert "merge_gap" not in next(d for d in plan if d.task == "sst5").parts  # no signal: left out
    text = format_plan(plan, cfg.curriculum.weights.model_dump())
    assert "label_entropy" in text and "aste_lap14" in text.splitlines()[-1]
    # weights steer the order: only the measured gap counts -> irony (big gap) after sst2
    only_gap = cfg.model_copy(update={"curriculum": cfg.curriculum.model_copy(update={
        "weights": cfg.curriculum.weights.model_copy(update={"classes": 0, "structure": 0, "input_length": 0,
                                                              "label_entropy": 0})})})
    assert [d.task for d in plan_curriculum(only_gap, metas, signals)][-1] == "tweet_irony"


def test_a_pinned_task_order_replaces_the_ranking_and_must_name_every_task_once():
    tasks = ["sst2", "sst5", "aste_lap14", "tweet_irony"]
    metas = {t: _meta(t) for t in tasks}
    ranked = [d.task for d in plan_curriculum(RunConfig(tasks=tasks), metas, {})]
    pinned = list(reversed(ranked))
    cfg = RunConfig(tasks=tasks, curriculum={"task_order": ["sentiment_" + pinned[0], *pinned[1:]]})
    plan = plan_curriculum(cfg, metas, {})
    assert [d.task for d in plan] == pinned
    assert plan[0].score > plan[-1].score  # the difficulty columns are still the measured ones
    for bad in (pinned[:-1], [*pinned, pinned[0]], [*pinned[:-1], "tweet_hate"]):
        with pytest.raises(ValueError, match="task_order must list every task of the run once"):
            RunConfig(tasks=tasks, curriculum={"task_order": bad})


def test_the_trainer_sees_examples_in_curriculum_order(tiny_base_dir, tmp_path):
    from memmcl_merge.experts import make_trainer

    cfg = RunConfig(tasks=["tweet_offensive", "sst5", "aste_res14"], data="embedded",
                    curriculum={"order": "easy_to_hard", "replay": 0.5, "passes": [1, 1],
                                "train": {"max_examples": 6, "batch_size": 4, "num_demos": 1}})
    metas = {t: _meta(t) for t in cfg.tasks}
    plan = plan_curriculum(cfg, metas, {})
    assert [d.task for d in plan] == ["tweet_offensive", "sst5", "aste_res14"]
    rows, index = curriculum_rows(cfg, plan)
    assert [i["phase"] for i in index] == sorted(i["phase"] for i in index)
    assert sum(i["replay"] for i in index) == 3 + 3  # each later phase adds half its size of earlier rows
    trainer, _ = make_trainer(str(tiny_base_dir), None, rows, cfg.curriculum.train, tmp_path,
                              sequential=True, progress=False)
    tok = trainer.processing_class
    seen = []
    for batch in trainer.get_train_dataloader():
        for ids, labels in zip(batch["input_ids"], batch["labels"]):
            prompt_ids = [i for i, lab in zip(ids.tolist(), labels.tolist()) if lab == -100 and i != tok.pad_token_id]
            seen.append(tok.decode(prompt_ids))
    expected = [r["prompt"] for r in rows]
    assert len(seen) == len(expected)
    assert all(s.strip().endswith(e.strip()[-60:]) for s, e in zip(seen, expected))


def test_shuffled_control_has_the_same_rows_without_replay_in_another_order():
    cfg = RunConfig(tasks=["tweet_offensive", "sst5", "aste_res14"], data="embedded",
                    curriculum={"order": "easy_to_hard", "replay": 0.5, "train": {"max_examples": 6}})
    plan = plan_curriculum(cfg, {t: _meta(t) for t in cfg.tasks}, {})
    ordered, ordered_index = curriculum_rows(cfg, plan)
    control = cfg.model_copy(update={"curriculum": cfg.curriculum.model_copy(update={"order": "shuffled"})})
    rows, index = curriculum_rows(control, plan)
    own = [r for r, i in zip(ordered, ordered_index) if not i["replay"]]
    assert not any(i["replay"] for i in index)
    assert sorted(r["prompt"] for r in rows) == sorted(r["prompt"] for r in own)
    assert [i["phase"] for i in index] != sorted(i["phase"] for i in index)


def test_a_curriculum_training_seed_reorders_the_experts_rows_and_draws_no_others():
    tasks = ["tweet_offensive", "sst5"]
    cfg = RunConfig(tasks=tasks, data="embedded", curriculum={"passes": [1, 1], "train": {"max_examples": 6}})
    plan = plan_curriculum(cfg, {t: _meta(t) for t in tasks}, {})
    rows, _ = curriculum_rows(cfg, plan)
    reseeded = cfg.model_copy(update={"curriculum": cfg.curriculum.model_copy(update={
        "train": cfg.curriculum.train.model_copy(update={"seed": 1})})})
    other, _ = curriculum_rows(reseeded, plan)
    assert sorted(r["prompt"] for r in other) == sorted(r["prompt"] for r in rows)  # the same data
    assert [r["prompt"] for r in other] != [r["prompt"] for r in rows]  # in another order
    # and the data are the experts' rows: a different experts' seed draws different rows
    moved = cfg.model_copy(update={"experts": cfg.experts.model_copy(update={
        "train": cfg.experts.train.model_copy(update={"seed": 1})})})
    assert sorted(r["prompt"] for r in curriculum_rows(moved, plan)[0]) != sorted(r["prompt"] for r in rows)


def test_mixed_easy_first_lets_harder_tasks_in_later_and_keeps_every_task_to_the_end():
    tasks = ["tweet_offensive", "sst5", "aste_res14"]
    cfg = RunConfig(tasks=tasks, data="embedded",
                    curriculum={"order": "mixed_easy_first", "mix_span": 0.5, "passes": [1, 1],
                                "train": {"max_examples": 24}})
    plan = plan_curriculum(cfg, {t: _meta(t) for t in tasks}, {})
    rows, index = curriculum_rows(cfg, plan)
    assert len(rows) == 3 * 24 and not any(i["replay"] for i in index)
    first = {t: next(n for n, i in enumerate(index) if i["task"] == t) for t in tasks}
    assert first["tweet_offensive"] < first["sst5"] < first["aste_res14"]  # easy first
    # the hardest joins half way: before it, about half of the two easier tasks' rows (12 + 8 expected)
    assert first["aste_res14"] >= 15
    assert {i["task"] for i in index[-18:]} == set(tasks)  # every task stays in the mix to the end


def test_lr_scheduler_reaches_the_trainer_config(tmp_path):
    from memmcl_merge.config import TrainConfig
    from memmcl_merge.experts import build_sft_config

    args = build_sft_config(TrainConfig(lr_scheduler="constant_with_warmup"), tmp_path)
    assert getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type) == "constant_with_warmup"
    with pytest.raises(ValueError):
        TrainConfig(lr_scheduler="exponential")


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("tasks: [sst2, nope]\n")
    with pytest.raises(ConfigError, match=r"tasks: Value error, unknown task\(s\) \['nope'\]"):
        load_config(bad)
    bad.write_text("experts: {train: {learning_rate: -1}}\n")
    with pytest.raises(ConfigError, match="experts.train.learning_rate"):
        load_config(bad)
    bad.write_text("evolve: {stages: [{name: s1, groups: {g: [sst2, stage0/x]}}]}\n")
    with pytest.raises(ConfigError, match="member 'stage0/x' is neither"):
        load_config(bad)
    bad.write_text("tasks: [sst2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("experts: {trian: {}}\n")
    with pytest.raises(ConfigError, match="experts.trian: Extra inputs are not permitted"):
        load_config(bad)


def test_config_extends_another(tmp_path):
    (tmp_path / "base.yml").write_text("tasks: [sst2, sst5]\nexperts: {train: {epochs: 1, learning_rate: 0.001}}\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "more.yml").write_text("extends: ../base.yml\nexperts: {train: {epochs: 3}}\n")
    cfg = load_config(sub / "more.yml")
    assert cfg.tasks == ["sst2", "sst5"]  # from the file it extends
    assert cfg.experts.train.epochs == 3 and cfg.experts.train.learning_rate == 0.001  # merged key by key
    (sub / "loop.yml").write_text("extends: loop.yml\n")
    with pytest.raises(ConfigError, match="extends itself"):
        load_config(sub / "loop.yml")
    (sub / "gone.yml").write_text("extends: nowhere.yml\n")
    with pytest.raises(ConfigError, match=r"nowhere.yml: config file not found \(extended by"):
        load_config(sub / "gone.yml")


def _tiny_pipeline_yaml(path: Path, base_dir: Path, out: Path) -> Path:
    cfg = {
        "name": "tiny", "output_dir": str(out), "base_model": str(base_dir), "data": "embedded",
        "tasks": ["tweet_offensive", "tweet_hate", "aste_lap14"],
        "experts": {"dev_limit": 8, "train": {"method": "full", "learning_rate": 3e-3, "batch_size": 16,
                                              "epochs": 2, "max_examples": 64, "save_dtype": "float32"}},
        "evolve": {"weak": {"size": 8}, "search": {"popsize": 4, "max_evals": 5, "layer_groups": 2},
                   "batch_size": 16},
        "curriculum": {"train": {"method": "full", "learning_rate": 1e-3, "max_examples": 8, "batch_size": 8,
                                 "save_dtype": "float32"}},
        "final_eval": {"split": "test", "limit": 8},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def _memmcl(args, **kw):
    exe = Path(sys.executable).with_name("memmcl")
    return subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, **kw)


def test_pipeline_killed_between_and_inside_steps_resumes_and_reports(tmp_path, tiny_base_dir):
    out = tmp_path / "run"
    config = _tiny_pipeline_yaml(tmp_path / "tiny.yml", tiny_base_dir, out)
    # 1. stop cleanly between steps (after the experts), as a user's --until or a crash there would
    proc = _memmcl(["run", str(config), "--until", "experts"])
    log = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, log[-3000:]
    markers = {t: (out / "experts" / t / "memmcl_expert.json").stat().st_mtime for t in
               ("tweet_offensive", "tweet_hate", "aste_lap14")}
    # 2. kill it hard inside the evolution step, once a candidate has been journaled
    proc = _memmcl(["run", str(config)])
    journal = out / "evolve" / "stage1" / "absa" / "journal.jsonl"  # the first search of the plan
    deadline = time.time() + 300
    while time.time() < deadline and not (journal.is_file() and journal.read_text().count("\n") >= 2):
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {proc.stdout.read()[-3000:]}")
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    kept = journal.read_text().splitlines()
    assert len(kept) >= 2
    # 3. run again: finishes, keeps the journaled candidates, does not retrain experts
    proc = _memmcl(["run", str(config)])
    log = proc.communicate(timeout=900)[0]
    assert proc.returncode == 0, log[-3000:]
    assert "[experts] done already, skipped" in log
    assert journal.read_text().splitlines()[:len(kept)] == kept
    for t, mtime in markers.items():
        assert (out / "experts" / t / "memmcl_expert.json").stat().st_mtime == mtime
    state = json.loads((out / "pipeline.json").read_text())
    assert all(state["steps"][s]["status"] == "done" for s in ("experts", "evolve", "curriculum", "evaluate"))
    report = (out / "report.md").read_text()
    assert "| tweet_offensive |" in report and "base" in report and "final" in report
    assert (out / "report_fitness.png").is_file() and (out / "recipes" / "stage2.yml").is_file()
    assert (out / "stage1" / "mast" / "config.json").is_file() and (out / "base").is_symlink()
    final = out / "final"
    assert (final / "README.md").read_text().startswith("---\nlibrary_name: transformers")
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(final).num_parameters() > 0
    assert "report:" in log and "final model:" in log


def test_cli_names_a_bad_stage_and_a_bad_config(tmp_path):
    from click.testing import CliRunner

    from memmcl_merge.cli import main

    cfg = tmp_path / "run.yml"
    cfg.write_text(f"output_dir: {tmp_path / 'out'}\ntasks: [sst2, tweet_irony]\n")
    res = CliRunner().invoke(main, ["evolve", str(cfg), "--stage", "9"])
    assert res.exit_code != 0 and "no stage '9'" in res.output and "stage1, stage2" in res.output
    cfg.write_text("experts: {train: {batch_size: 0}}\n")
    res = CliRunner().invoke(main, ["run", str(cfg)])
    assert res.exit_code != 0 and "experts.train.batch_size" in res.output
    assert not (tmp_path / "out").exists()  # rejected before any work started


def test_passes_move_steps_from_easy_to_hard_tasks_at_the_same_total():
    cfg = RunConfig(tasks=["tweet_offensive", "sst5", "aste_res14"], data="embedded",
                    curriculum={"passes": [0.5, 1.5], "train": {"max_examples": 8}})
    plan = plan_curriculum(cfg, {t: _meta(t) for t in cfg.tasks}, {})
    rows, index = curriculum_rows(cfg, plan)
    count = {d.task: sum(i["task"] == d.task for i in index) for d in plan}
    assert [count[d.task] for d in plan] == [4, 8, 12]  # easiest half a pass, hardest one and a half
    assert len(rows) == 3 * 8
    hardest = [r["prompt"] for r, i in zip(rows, index) if i["task"] == plan[-1].task]
    assert len(set(hardest)) == 8  # a whole pass over every row, then half of them again
    even = cfg.model_copy(update={"curriculum": cfg.curriculum.model_copy(update={"passes": (1.0, 1.0)})})
    assert sorted(i["task"] for i in curriculum_rows(even, plan)[1]) == sorted(t for t in cfg.tasks for _ in range(8))
    with pytest.raises(ValueError, match="passes must be > 0"):
        RunConfig(tasks=["sst2"], curriculum={"passes": [0, 2]})


def test_lr_shares_show_the_learning_rate_a_late_task_loses_under_a_decaying_schedule():
    from memmcl_merge.config import TrainConfig
    from memmcl_merge.curriculum import lr_shares

    train = TrainConfig(batch_size=2, warmup_ratio=0.0, lr_scheduler="linear")
    # 40 rows, 20 steps: "early" fills the first half, "late" the second; linear decay from 1 to 0
    halves = [{"task": "early"}] * 20 + [{"task": "late"}] * 20
    shares = lr_shares(halves, train)
    # step s is at rate 1 - s/20: means 0.775 and 0.275 over a mean of 0.525
    assert shares == {"early": pytest.approx(0.775 / 0.525, abs=1e-3), "late": pytest.approx(0.275 / 0.525, abs=1e-3)}
    assert lr_shares([{"task": t} for t in ["a", "b"] * 20], train) == {"a": pytest.approx(1.0, abs=0.06),
                                                                        "b": pytest.approx(1.0, abs=0.06)}
    flat = TrainConfig(batch_size=2, warmup_ratio=0.0, lr_scheduler="constant_with_warmup")
    assert lr_shares(halves, flat) == {"early": 1.0, "late": 1.0}
    # two epochs over the same order: a row's rate is its mean over both visits
    twice = lr_shares(halves, train.model_copy(update={"epochs": 2.0}))
    assert twice["early"] > 1.0 > twice["late"] and twice["late"] > shares["late"]

    # the curriculum's own order: the hardest task joins last, so it gets less than its share
    cfg = RunConfig(tasks=["tweet_offensive", "sst5", "aste_res14"], data="embedded",
                    curriculum={"passes": [1.0, 1.0], "mix_span": 0.5, "train": {"max_examples": 8, "batch_size": 2}})
    plan = plan_curriculum(cfg, {t: _meta(t) for t in cfg.tasks}, {})
    by_task = lr_shares(curriculum_rows(cfg, plan)[1], cfg.curriculum.train)
    assert by_task[plan[-1].task] < 1.0 and by_task[plan[-1].task] < by_task[plan[0].task]


def test_replace_dir_puts_a_folder_under_a_parent_that_does_not_exist_yet(tmp_path):
    """A model trained into a work folder lands in a new place (a curriculum variant's folder):
    the move must not lose it for want of a parent folder."""
    from memmcl_merge.io import replace_dir

    tmp = tmp_path / "work" / ".model.tmp-1"
    tmp.mkdir(parents=True)
    (tmp / "config.json").write_text("{}")
    final = replace_dir(tmp, tmp_path / "variants" / "a" / "model")
    assert (final / "config.json").read_text() == "{}" and not tmp.exists()


def test_fresh_tmp_dir_clears_half_written_folders_of_killed_runs_and_keeps_the_rest(tmp_path):
    """The curriculum, blend and soup write into it: a killed run's leftovers must not pile up beside
    the model, and nothing else beside it may go."""
    import os

    from memmcl_merge.io import fresh_tmp_dir

    final = tmp_path / "run" / "final"
    stale = final.parent / ".final.tmp-999999999"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half written")
    other = final.parent / ".seed_0.tmp-1"  # another folder's, not ours
    other.mkdir()
    tmp = fresh_tmp_dir(final)
    assert tmp == final.parent / f".final.tmp-{os.getpid()}" and not tmp.exists()
    assert not stale.exists() and other.exists()


def test_a_finished_curriculum_with_other_settings_is_refused_not_reused(tmp_path):
    """Resuming after an edit of `curriculum:` must not pass off the old model as the new one."""
    from memmcl_merge.curriculum import MARKER, run_curriculum
    from memmcl_merge.io import write_json

    cfg = RunConfig(tasks=["sst2"], data="embedded", output_dir=str(tmp_path / "run"),
                    curriculum={"start_model": str(tmp_path / "start")})
    done = tmp_path / "final"
    record = {"start_model": str(tmp_path / "start"), "config": cfg.curriculum.model_dump(mode="json")}
    write_json(done / MARKER, record)
    assert run_curriculum(cfg, progress=None, out=done) == json.loads(json.dumps(record))  # same settings: reused
    edited = cfg.model_copy(update={"curriculum": cfg.curriculum.model_copy(update={"passes": (1.0, 1.0)})})
    with pytest.raises(ValueError, match=r"trained with other settings \(differs in: passes\)"):
        run_curriculum(edited, progress=None, out=done)
    # how often the training checkpoints is not how it trains: the model is still this one
    train = cfg.curriculum.train.model_copy(update={"checkpoint_minutes": 0.5})
    timed = cfg.model_copy(update={"curriculum": cfg.curriculum.model_copy(update={"train": train})})
    assert run_curriculum(timed, progress=None, out=done) == json.loads(json.dumps(record))


def test_a_killed_curriculum_training_resumes_from_its_checkpoint_and_cleans_it_up(tmp_path, tiny_base_dir,
                                                                                   monkeypatch):
    from transformers import TrainerCallback

    from memmcl_merge import experts
    from memmcl_merge.curriculum import run_curriculum

    cfg = RunConfig(tasks=["tweet_offensive", "sst2"], data="embedded", output_dir=str(tmp_path / "run"),
                    curriculum={"start_model": str(tiny_base_dir), "passes": [1, 1],
                                "train": {"method": "full", "max_examples": 12, "batch_size": 4,
                                          "save_dtype": "float32", "checkpoint_minutes": 1e-9}})
    out, ckpt = tmp_path / "run" / "final", tmp_path / "run" / ".final.checkpoint"
    steps = []

    class Watch(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            steps.append(state.global_step)
            if kill_at and state.global_step == kill_at:
                raise KeyboardInterrupt

    real = experts.sft_train
    monkeypatch.setattr(experts, "sft_train", lambda *a, **kw: real(*a, **kw, callbacks=[Watch()]))
    kill_at = 4
    with pytest.raises(KeyboardInterrupt):
        run_curriculum(cfg, progress=None)
    assert not out.exists() and (ckpt / "checkpoint-3" / "trainer_state.json").is_file()
    kill_at, steps[:] = None, []
    record = run_curriculum(cfg, progress=None)
    assert steps == [4, 5, 6] and record["train"]["steps"] == 6  # 24 rows, batches of 4, from step 4
    assert record["train"]["resumed_from_step"] == 3
    assert (out / "config.json").is_file() and not ckpt.exists()


def test_with_a_blend_the_final_model_is_the_blend_and_the_report_shows_its_alphas(tmp_path):
    from memmcl_merge.blend import MARKER as BLEND_MARKER
    from memmcl_merge.curriculum import MARKER as CURRICULUM_MARKER
    from memmcl_merge.io import write_json
    from memmcl_merge.pipeline import STEPS, PipelineState, final_model, systems, write_report

    out = tmp_path / "run"
    write_json(tmp_path / "base" / "config.json", {})
    cfg = RunConfig(tasks=["sst2"], data="embedded", output_dir=str(out), base_model=str(tmp_path / "base"))
    assert final_model(cfg) == out / "final" and "curriculum" not in systems(cfg)
    cfg = cfg.model_copy(update={"blend": cfg.blend.model_copy(update={"enabled": True})})
    assert STEPS.index("curriculum") < STEPS.index("blend") < STEPS.index("evaluate")
    assert final_model(cfg) == out / "blend"
    assert systems(cfg)["curriculum"] == str(out / "final") and systems(cfg)["final"] == str(out / "blend")
    write_json(out / "final" / CURRICULUM_MARKER, {"plan": [{"task": "sst2", "score": 0.1}], "phases": [{"rows": 8}]})
    write_json(out / "blend" / BLEND_MARKER, {"alpha": 0.5, "recipe": str(out / "recipes" / "blend.yml"),
                                              "tried": [{"alpha": 0.0, "fitness": 0.4}, {"alpha": 0.5, "fitness": 0.6},
                                                        {"alpha": 1.0, "fitness": 0.55}]})
    report = write_report(cfg, PipelineState(out / "pipeline.json")).read_text()
    assert "## Curriculum (easiest first)" in report and "| 1 | sst2 | 0.100 | 8 |" in report
    assert "| 0.5 (kept) | 0.6000 |" in report and "| 1 | 0.5500 |" in report
    assert f"Final model: `{out / 'blend'}`" in report
    assert "blended back toward the merge" in (out / "blend" / "README.md").read_text()


def test_cli_blend_before_the_curriculum_names_what_is_missing(tmp_path):
    from click.testing import CliRunner

    from memmcl_merge.cli import main

    cfg = tmp_path / "run.yml"
    cfg.write_text(f"output_dir: {tmp_path / 'out'}\ntasks: [sst2]\nblend: {{enabled: true}}\n")
    res = CliRunner().invoke(main, ["blend", str(cfg)])
    assert res.exit_code != 0 and "no finished curriculum model" in res.output and "run the curriculum first" in res.output
    assert not (tmp_path / "out" / "blend").exists()


def test_curriculum_seeds_train_each_seed_and_soup_them_with_mergekit_linear(tmp_path, tiny_base_dir, monkeypatch):
    """curriculum.seeds 2: two trainings (seeds 0 and 1, each its own resumable folder) and their
    uniform average in final, written by mergekit from a plain linear recipe; a rerun trains nothing."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from memmcl_merge import experts
    from memmcl_merge.curriculum import MARKER, run_curriculum
    from memmcl_merge.io import read_json

    cfg = RunConfig(tasks=["tweet_offensive", "sst2"], data="embedded", output_dir=str(tmp_path / "run"),
                    curriculum={"start_model": str(tiny_base_dir), "passes": [1, 1], "seeds": 2,
                                "train": {"method": "full", "max_examples": 8, "batch_size": 4,
                                          "save_dtype": "float32"}})
    record = run_curriculum(cfg, progress=None)
    run = tmp_path / "run"
    members = [run / "curriculum" / "seed_0", run / "curriculum" / "seed_1"]
    assert record["members"] == [str(m) for m in members] and record["config"]["seeds"] == 2
    recipe = yaml.safe_load(Path(record["recipe"]).read_text())
    assert recipe["merge_method"] == "linear" and [m["model"] for m in recipe["models"]] == [str(m) for m in members]
    a, b = (load_file(m / "model.safetensors") for m in members)
    soup = load_file(run / "final" / "model.safetensors")
    name = next(n for n in a if "layers.0.mlp.down_proj" in n)
    assert not torch.allclose(a[name], b[name])  # the two seeds trained differently
    assert torch.allclose(soup[name].float(), (a[name] + b[name]) / 2, atol=1e-2)
    assert AutoTokenizer.from_pretrained(run / "final") is not None
    assert read_json(run / "final" / MARKER)["members"] == record["members"]
    from memmcl_merge.pipeline import PipelineState, write_report

    report = write_report(cfg, PipelineState(run / "pipeline.json")).read_text()
    assert "the soup of 2 training seeds" in report
    assert "2 training seeds averaged" in (run / "final" / "README.md").read_text()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished soup must not train again")

    monkeypatch.setattr(experts, "sft_train", no_training)
    assert run_curriculum(cfg, progress=None)["members"] == record["members"]
    one = cfg.model_copy(update={"curriculum": cfg.curriculum.model_copy(update={"seeds": 1})})
    with pytest.raises(ValueError, match=r"differs in: seeds"):
        run_curriculum(one, progress=None)
