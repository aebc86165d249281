"""curriculum.teacher_rows: unseen train rows answered by the own expert (memmcl_merge/teacher_rows.py)."""

from __future__ import annotations

import json
import shutil

import pytest

from memmcl_merge.config import RunConfig


def _run(tmp_path, disagreeing_experts, teacher: str = "tweet_offensive", **curriculum):
    """A run folder whose tweet_offensive expert is ``teacher`` (the trained expert, or its anti-expert
    saved as tweet_irony)."""
    from memmcl_merge.experts import MARKER

    folder = tmp_path / "run" / "experts" / "tweet_offensive"
    shutil.copytree(disagreeing_experts / "experts" / teacher, folder)
    (folder / MARKER).write_text(json.dumps({"teacher": teacher}))
    return RunConfig(tasks=["tweet_offensive"], data="embedded", output_dir=str(tmp_path / "run"),
                     experts={"train": {"max_examples": 16}}, curriculum=curriculum)


def _agreement(docs) -> float:
    from memmcl_merge.data import load_docs

    gold = {d["text"]: d["label"] for d in load_docs("tweet_offensive", "train", "embedded")}
    return sum(d["label"] == gold[d["text"]] for d in docs) / len(docs)


def test_teacher_rows_are_unseen_rows_with_the_experts_answers(tiny_base_dir, disagreeing_experts, tmp_path,
                                                                monkeypatch):
    from memmcl_merge import evolve
    from memmcl_merge.data import load_docs
    from memmcl_merge.experts import MARKER, task_train_docs
    from memmcl_merge.tasks import get_task
    from memmcl_merge.teacher_rows import teacher_docs

    cfg = _run(tmp_path / "expert", disagreeing_experts)
    said = []
    docs = teacher_docs(cfg, "sentiment_tweet_offensive", 24, progress=said.append)
    assert len(docs) == 24 and "24 unseen train rows answered by its expert" in said[0]
    spec = get_task("tweet_offensive")
    seen = {d["text"] for d in task_train_docs(spec, load_docs(spec, "train", "embedded"), cfg.experts.train)}
    assert not seen & {d["text"] for d in docs}  # never a row the experts trained on
    # the labels are the teacher's, not the gold ones: the expert mostly agrees with gold, its
    # anti-expert (base - task vector) on the same rows much less
    anti = _run(tmp_path / "anti", disagreeing_experts, teacher="tweet_irony")
    anti_docs = teacher_docs(anti, "tweet_offensive", 24, progress=None)
    assert [d["text"] for d in anti_docs] == [d["text"] for d in docs]  # the same draw of inputs
    assert _agreement(docs) >= _agreement(anti_docs) + 0.25

    # answered once: a second call reads them back; a retrained expert (another marker) answers again
    calls = []
    real = evolve.teacher_labels
    monkeypatch.setattr(evolve, "teacher_labels", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert teacher_docs(cfg, "tweet_offensive", 24, progress=None) == docs and not calls
    (cfg.experts_dir / "tweet_offensive" / MARKER).write_text(json.dumps({"retrained": True}))
    assert teacher_docs(cfg, "tweet_offensive", 24, progress=None) == docs and calls == [1]


def test_a_curriculum_counts_its_passes_over_gold_and_teacher_rows(tiny_base_dir, disagreeing_experts, tmp_path):
    from memmcl_merge.curriculum import TaskDifficulty, curriculum_rows
    from memmcl_merge.teacher_rows import teacher_train_rows

    cfg = _run(tmp_path, disagreeing_experts, teacher_rows=8, passes=[1.5, 1.5],
               train={"max_examples": 16, "num_demos": 0})
    plan = [TaskDifficulty(task="tweet_offensive", parts={}, score=0.0)]
    rows, index = curriculum_rows(cfg, plan)
    assert len(rows) == round(1.5 * (16 + 8)) and all(i["task"] == "tweet_offensive" for i in index)
    prompts = {r["prompt"] for r in rows}
    teacher = teacher_train_rows(cfg, "tweet_offensive", 8, cfg.curriculum.train, progress=None)
    assert len(teacher) == 8 and all(r["prompt"] in prompts for r in teacher)  # one whole pass over every row
    plain, _ = curriculum_rows(cfg.model_copy(update={"curriculum": cfg.curriculum.model_copy(
        update={"teacher_rows": 0})}), plan)
    assert len(plain) == round(1.5 * 16) and not {r["prompt"] for r in teacher} & {r["prompt"] for r in plain}


def test_a_missing_expert_is_named(tmp_path):
    from memmcl_merge.teacher_rows import teacher_docs

    cfg = RunConfig(tasks=["tweet_offensive"], data="embedded", output_dir=str(tmp_path),
                    curriculum={"teacher_rows": 4})
    with pytest.raises(FileNotFoundError, match=r"curriculum.teacher_rows: no trained expert for tweet_offensive "
                                                r".*set teacher_rows to 0"):
        teacher_docs(cfg, "tweet_offensive", 4)


def test_weak_sets_relabelled_by_the_experts_carry_their_answers(tiny_base_dir, disagreeing_experts, tmp_path):
    """``evolve.weak.teacher: experts`` labels through the same path (teacher_labels) as the teacher rows."""
    from memmcl_merge.data import load_docs
    from memmcl_merge.evolve import build_weak_sets

    agreement = {}
    for teacher in ("tweet_offensive", "tweet_irony"):
        cfg = _run(tmp_path / teacher, disagreeing_experts, teacher=teacher)
        cfg = cfg.model_copy(update={"evolve": cfg.evolve.model_copy(update={"weak": cfg.evolve.weak.model_copy(
            update={"teacher": "experts", "size": 24})})})
        said = []
        root = build_weak_sets(cfg, ["tweet_offensive"], progress=said.append)
        weak = [json.loads(line) for line in (root / "tweet_offensive" / "weak.jsonl").read_text().splitlines()]
        assert len(weak) == 24 and said == ["weak set tweet_offensive: 24 examples of dev, labelled by experts"]
        gold = {d["text"]: d["label"] for d in load_docs("tweet_offensive", "dev", "embedded")}
        agreement[teacher] = sum(d["label"] == gold[d["text"]] for d in weak) / len(weak)
    assert agreement["tweet_offensive"] >= agreement["tweet_irony"] + 0.25, agreement


def test_teacher_tasks_and_teacher_steps(tiny_base_dir, disagreeing_experts, tmp_path):
    """Only the named tasks get teacher rows (the other needs no expert); ``teacher_steps: same`` keeps
    each task's steps at its gold rows' count, drawn from gold and teacher rows."""
    from memmcl_merge.curriculum import TaskDifficulty, curriculum_rows
    from memmcl_merge.teacher_rows import teacher_train_rows

    one = _run(tmp_path, disagreeing_experts)  # tweet_offensive's expert in the run folder, no other
    curriculum = {"teacher_rows": 8, "teacher_tasks": ["sentiment_tweet_offensive"], "passes": [1.5, 1.5],
                  "train": {"max_examples": 16, "num_demos": 0}}
    cfg = RunConfig(tasks=["tweet_offensive", "tweet_irony"], data="embedded", output_dir=str(one.output_dir),
                    experts=one.experts, curriculum=curriculum)
    assert cfg.curriculum.teacher_tasks == ["tweet_offensive"]
    plan = [TaskDifficulty(task=t, parts={}, score=0.0) for t in cfg.tasks]
    teacher = {r["prompt"] for r in teacher_train_rows(cfg, "tweet_offensive", 8, cfg.curriculum.train, None)}

    def per_task(steps):
        c = cfg.model_copy(update={"curriculum": cfg.curriculum.model_copy(update={"teacher_steps": steps})})
        rows, index = curriculum_rows(c, plan)
        return {t: [r["prompt"] for r, i in zip(rows, index) if i["task"] == t] for t in cfg.tasks}

    added, same = per_task("added"), per_task("same")
    assert len(added["tweet_offensive"]) == round(1.5 * (16 + 8)) and len(added["tweet_irony"]) == round(1.5 * 16)
    # same steps as the gold rows alone: 1.5 passes over 16 rows = one pass over the 24, every teacher row once
    assert len(same["tweet_offensive"]) == round(1.5 * 16) == len(same["tweet_irony"])
    assert sum(p in teacher for p in same["tweet_offensive"]) == 8
    assert not teacher & set(same["tweet_irony"]) and not teacher & set(added["tweet_irony"])

    with pytest.raises(ValueError, match=r"curriculum.teacher_tasks names task\(s\) \['sst5'\]"):
        RunConfig(tasks=["tweet_offensive"], data="embedded", curriculum={"teacher_rows": 8, "teacher_tasks": ["sst5"]})
    with pytest.raises(ValueError, match="teacher_tasks is set but teacher_rows is 0"):
        RunConfig(tasks=["tweet_offensive"], data="embedded", curriculum={"teacher_tasks": ["tweet_offensive"]})


def test_teacher_pick_keeps_the_most_confident_rows_per_label(tiny_base_dir, disagreeing_experts, tmp_path,
                                                              monkeypatch):
    """``teacher_pick`` keeps per answered label its most confident rows, in the train split's label
    shares (not the most confident rows overall); the expert scores fresh rows once, answers and
    probabilities from the same pass."""
    from memmcl_merge import evolve, teacher_rows
    from memmcl_merge.data import load_docs
    from memmcl_merge.tasks import get_task

    probs = [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55], [0.7, 0.3], [0.99, 0.01]]
    # 4 of 6 at equal shares: a's two most confident (5, 0) and b's two (2, 3); overall it would be 5, 0, 2, 4
    assert teacher_rows.confident_pick(probs, ["a", "b"], {"a": 0.5, "b": 0.5}, 4 / 6) == [0, 2, 3, 5]
    assert teacher_rows.confident_pick(probs, ["a", "b"], {"a": 0.0, "b": 1.0}, 4 / 6) == [2, 3]  # b has two

    cfg = _run(tmp_path, disagreeing_experts, teacher_rows=24, teacher_pick=0.5)
    passes, real = [], evolve.teacher_labels
    monkeypatch.setattr(evolve, "teacher_labels", lambda *a, **k: passes.append(1) or real(*a, **k))
    said = []
    picked = teacher_rows.teacher_docs(cfg, "tweet_offensive", 24, progress=said.append)
    assert passes == [1]  # fresh rows: one pass of the expert gives the answers and the probabilities
    assert picked and len(picked) <= 12 and f"kept {len(picked)} of 24" in said[-1]
    every = teacher_rows.teacher_docs(cfg.model_copy(update={"curriculum": cfg.curriculum.model_copy(
        update={"teacher_pick": None})}), "tweet_offensive", 24, progress=None)
    assert len(every) == 24 and passes == [1]
    texts = [d["text"] for d in every]
    assert [texts.index(d["text"]) for d in picked] == sorted(texts.index(d["text"]) for d in picked)
    assert all(d in every for d in picked)  # the expert's answers, a subset in row order
    spec = get_task("tweet_offensive")
    prior = teacher_rows.label_shares(spec, load_docs(spec, "train", "embedded"))
    for lab in spec.labels:
        assert sum(d["label"] == lab for d in picked) <= round(prior[lab] * 12)
    # read back: no expert runs again
    assert teacher_rows.teacher_docs(cfg, "tweet_offensive", 24, progress=None) == picked and passes == [1]
    # rows answered before probabilities were kept: scored once more, the same pick
    probs_file = teacher_rows.teacher_dir(cfg) / "tweet_offensive" / "rows_24.probs.json"
    probs_file.unlink()
    assert teacher_rows.teacher_docs(cfg, "tweet_offensive", 24, progress=None) == picked and passes == [1, 1]
    assert probs_file.is_file()

    with pytest.raises(ValueError, match="teacher_pick is set but teacher_rows is 0"):
        RunConfig(tasks=["tweet_offensive"], data="embedded", curriculum={"teacher_pick": 0.5})
    with pytest.raises(ValueError, match="less than or equal to 1"):
        RunConfig(tasks=["tweet_offensive"], data="embedded", curriculum={"teacher_rows": 8, "teacher_pick": 1.5})
