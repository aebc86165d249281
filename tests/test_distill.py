"""curriculum.distill: the own experts as teachers of the curriculum SFT (memmcl_merge/distill.py)."""

from __future__ import annotations

import pytest
import torch

from memmcl_merge.config import RunConfig, TrainConfig
from memmcl_merge.distill import TASK_KEY, distill_token_losses, distill_trainer_class, distilled_tasks

TRAIN = TrainConfig(method="full", learning_rate=3e-3, batch_size=8, max_examples=16, epochs=1,
                    save_dtype="float32", dtype="float32", warmup_ratio=0.0)


def test_token_losses_mix_cross_entropy_and_kl_on_distilled_rows_only():
    torch.manual_seed(0)
    student, teacher = torch.randn(3, 4, 7), torch.randn(3, 4, 7)
    targets = torch.tensor([[1, 2, -100, -100], [3, 4, 5, -100], [6, 0, 1, 2]])
    distilled = torch.tensor([True, False, True])
    ce = torch.nn.functional.cross_entropy(student.transpose(1, 2), targets, reduction="none")  # 0 at -100
    assert torch.allclose(distill_token_losses(student, teacher, targets, distilled, 0.0), ce, atol=1e-6)
    # the teacher equal to the student: no KL, the distilled rows' CE scaled by 1 - weight
    same = distill_token_losses(student, student, targets, distilled, 0.25)
    assert torch.allclose(same, torch.where(distilled[:, None], 0.75 * ce, ce), atol=1e-6)
    kl = distill_token_losses(student, teacher, targets, distilled, 1.0)
    assert torch.equal(kl[1], ce[1])  # a row of another task keeps its CE
    assert (kl[0, :2] > 0).all() and (kl[targets == -100] == 0).all()
    # KL(teacher || student) by hand for one token
    p = teacher[2, 3].softmax(-1)
    assert kl[2, 3].item() == pytest.approx((p * (p.log() - student[2, 3].log_softmax(-1))).sum().item(), abs=1e-5)


def _rows(task: str, n: int = 16):
    from memmcl_merge.experts import task_train_rows

    return [dict(r, **{TASK_KEY: task}) for r in task_train_rows(task, "embedded", TRAIN)[:n]]


def _trainer(model, teacher, rows, weight, tmp_path):
    from memmcl_merge.experts import make_trainer

    trainer, _ = make_trainer(str(model), None, rows, TRAIN, tmp_path, sequential=True, progress=False,
                              trainer_cls=distill_trainer_class(),
                              trainer_kwargs={"teachers": {"tweet_offensive": teacher}, "weight": weight})
    return trainer


def test_the_trainer_loss_lines_up_with_trls_on_the_answer_tokens(tiny_base_dir, disagreeing_experts, tmp_path):
    """With the student as its own teacher the loss is (1 - weight) x TRL's cross-entropy (same tokens,
    same positions); another teacher adds a positive KL; rows of other tasks get TRL's loss as is."""
    rows = _rows("tweet_offensive", 8) + _rows("sst5", 8)
    trainer = _trainer(tiny_base_dir, tiny_base_dir, rows, 0.25, tmp_path / "a")
    batches = list(trainer.get_train_dataloader())
    assert [b["teacher_index"].tolist() for b in batches] == [[0] * 8, [-1] * 8]
    model = trainer.model
    with torch.no_grad():
        for b in batches:
            plain = {k: v for k, v in b.items() if k != "teacher_index"}
            trl = super(type(trainer), trainer).compute_loss(model, dict(plain))
            ours = trainer.compute_loss(model, dict(b))
            scale = 0.75 if (b["teacher_index"] >= 0).all() else 1.0
            assert ours.item() == pytest.approx(scale * trl.item(), rel=1e-4)
        other = _trainer(tiny_base_dir, disagreeing_experts / "experts" / "tweet_irony", rows, 0.25, tmp_path / "b")
        first = next(iter(other.get_train_dataloader()))
        plain = {k: v for k, v in first.items() if k != "teacher_index"}
        assert other.compute_loss(other.model, dict(first)).item() > \
            0.75 * super(type(other), other).compute_loss(other.model, dict(plain)).item() + 1e-3


def _kl_to(teacher_dir, student, rows, tok):
    from transformers import AutoModelForCausalLM

    teacher = AutoModelForCausalLM.from_pretrained(str(teacher_dir), dtype=torch.float32).eval()
    total = 0.0
    with torch.no_grad():
        for r in rows:
            p = tok(r["prompt"])["input_ids"]
            ids = torch.tensor([p + tok(r["completion"])["input_ids"]])
            t, s = teacher(ids).logits[0, len(p) - 1:-1], student(ids).logits[0, len(p) - 1:-1]
            total += (t.softmax(-1) * (t.log_softmax(-1) - s.log_softmax(-1))).sum(-1).mean().item()
    return total / len(rows)


def test_distilling_pulls_the_model_toward_its_teacher_not_the_gold(tiny_base_dir, disagreeing_experts, tmp_path):
    """The teacher is the anti-expert of tweet_offensive: distilled (weight 1) the model comes closer to
    it than it started and than the same steps on the gold answers take it."""
    from memmcl_merge.experts import sft_train

    anti = disagreeing_experts / "experts" / "tweet_irony"
    rows = _rows("tweet_offensive")
    gold = sft_train(str(tiny_base_dir), None, rows, TRAIN, None, sequential=True, progress=False)
    kd = sft_train(str(tiny_base_dir), None, rows, TRAIN, None, sequential=True, progress=False,
                   trainer_cls=distill_trainer_class(),
                   trainer_kwargs={"teachers": {"tweet_offensive": anti}, "weight": 1.0})
    from memmcl_merge.models import load_model_and_tokenizer

    base, tok = load_model_and_tokenizer(str(tiny_base_dir))
    kl = _kl_to(anti, kd.model, rows, tok)
    assert kl < 0.8 * _kl_to(anti, base, rows, tok) and kl < 0.8 * _kl_to(anti, gold.model, rows, tok)


def test_distill_settings_are_checked_and_a_missing_teacher_is_named(tmp_path):
    from memmcl_merge.distill import teacher_folders
    from memmcl_merge.experts import MARKER

    tasks = ["tweet_offensive", "tweet_irony", "sst5"]
    assert distilled_tasks(RunConfig(tasks=tasks, curriculum={"distill": {"tasks": ["tweet_irony"]}})) == []
    done = tmp_path / "experts" / "tweet_offensive"
    done.mkdir(parents=True)
    (done / "config.json").write_text("{}")
    cfg = RunConfig(tasks=tasks, output_dir=str(tmp_path),
                    curriculum={"distill": {"weight": 0.5, "tasks": ["sentiment_tweet_offensive", "sst5"]}})
    assert distilled_tasks(cfg) == ["tweet_offensive", "sst5"]
    assert distilled_tasks(cfg.model_copy(update={"curriculum": cfg.curriculum.model_copy(update={
        "distill": cfg.curriculum.distill.model_copy(update={"tasks": None})})})) == tasks
    with pytest.raises(FileNotFoundError, match=r"no trained expert for tweet_offensive .*, sst5 "):
        teacher_folders(cfg, distilled_tasks(cfg))  # a folder without its completion marker is no expert
    (done / MARKER).write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"no trained expert for sst5 "):
        teacher_folders(cfg, distilled_tasks(cfg))
    assert teacher_folders(cfg, ["tweet_offensive"]) == {"tweet_offensive": done}
    with pytest.raises(ValueError, match=r"distill.tasks names task\(s\) \['sst2'\]"):
        RunConfig(tasks=tasks, curriculum={"distill": {"weight": 0.5, "tasks": ["sst2"]}})
    with pytest.raises(ValueError):
        RunConfig(tasks=tasks, curriculum={"distill": {"weight": 1.5}})


def test_a_curriculum_with_distill_trains_and_its_record_keeps_the_setting(tiny_base_dir, disagreeing_experts,
                                                                            tmp_path):
    import shutil

    from memmcl_merge.curriculum import MARKER as CURRICULUM_MARKER
    from memmcl_merge.curriculum import run_curriculum
    from memmcl_merge.experts import MARKER

    teacher = tmp_path / "run" / "experts" / "tweet_offensive"
    shutil.copytree(disagreeing_experts / "experts" / "tweet_irony", teacher)  # the anti-expert as teacher
    (teacher / MARKER).write_text("{}")
    cfg = RunConfig(tasks=["tweet_offensive", "tweet_irony"], data="embedded", output_dir=str(tmp_path / "run"),
                    curriculum={"start_model": str(tiny_base_dir), "passes": [1, 1],
                                "distill": {"weight": 1.0, "tasks": ["tweet_offensive"]},
                                "train": TRAIN.model_dump() | {"max_examples": 8}})
    said = []
    record = run_curriculum(cfg, progress=said.append)
    assert "curriculum: distilling tweet_offensive from their own experts (weight 1.0)" in said
    assert record["config"]["distill"] == {"weight": 1.0, "tasks": ["tweet_offensive"]}
    assert (tmp_path / "run" / "final" / CURRICULUM_MARKER).is_file()
    plain = cfg.model_copy(update={"curriculum": cfg.curriculum.model_copy(update={
        "distill": cfg.curriculum.distill.model_copy(update={"weight": 0.0})})})
    with pytest.raises(ValueError, match=r"trained with other settings \(differs in: distill\)"):
        run_curriculum(plain, progress=None)
