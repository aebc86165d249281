"""The curriculum SFT with each task's own expert as teacher (``curriculum.distill``).

On a distilled task's answer tokens the loss is

    (1 - weight) * CE(gold token) + weight * KL(own expert || model)      over the whole vocabulary

Why: the merge starts from the experts' weights but is fine-tuned on the gold answers of few rows;
the own expert's distribution over those same rows says what it learnt beyond the gold token (how
sure it is, which labels it confuses), so the merged model is pulled toward the expert's behaviour on
the tasks where it trails it, with no data beyond the expert's own training rows. Rows of other tasks
keep the plain cross-entropy. The teachers are the run's experts (``experts/<task>``), frozen.

TRL's ``SFTTrainer`` does the data preparation and the training loop; this subclass only adds the
teacher term to its loss, on the positions of the answer tokens (logits elsewhere are not built).
A batch with a distilled row skips TRL's own loss, so TRL's entropy and token-accuracy metrics are
logged from the other batches only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

TASK_KEY = "task"  # the row key naming the task a training row belongs to (kept through TRL's preparation)


def distilled_tasks(cfg) -> list[str]:
    """The tasks whose rows learn from their own expert (none when ``distill.weight`` is 0)."""
    d = cfg.curriculum.distill
    if d.weight == 0:
        return []
    return list(d.tasks) if d.tasks is not None else list(cfg.tasks)


def teacher_folders(cfg, tasks: Sequence[str], setting: str = "curriculum.distill",
                    fix: str = "drop those tasks from distill.tasks") -> dict[str, Path]:
    """Each task's trained expert, the teacher of its rows; a missing one is an error that names it."""
    from .experts import expert_folder, is_complete

    folders = {t: expert_folder(cfg, t) for t in tasks}
    missing = [f"{t} ({f})" for t, f in folders.items() if not is_complete(f)]
    if missing:
        raise FileNotFoundError(f"{setting}: no trained expert for {', '.join(missing)}; "
                                f"train the experts first (memmcl experts) or {fix}")
    return folders


def distill_token_losses(student_logits, teacher_logits, targets, distilled, weight: float):
    """Per answer token: CE to the gold token, and on the rows where ``distilled`` is true
    ``(1 - weight) * CE + weight * KL(teacher || student)``; 0 where ``targets`` is -100.

    ``student_logits`` / ``teacher_logits``: (batch, positions, vocab), position j predicting
    ``targets[:, j]``; ``distilled``: (batch,) bool. Computed in fp32.
    """
    import torch

    mask = targets != -100
    logp = student_logits.float().log_softmax(-1)
    ce = -logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    t_logp = teacher_logits.float().log_softmax(-1)
    kl = (t_logp.exp() * (t_logp - logp)).sum(-1)
    mixed = torch.where(distilled[:, None], (1.0 - weight) * ce + weight * kl, ce)
    return mixed * mask


def distill_trainer_class():
    """``SFTTrainer`` with the teacher term (imported lazily: TRL is heavy)."""
    import torch
    from trl import SFTTrainer

    class DistillSFTTrainer(SFTTrainer):
        """Rows carry their task (``TASK_KEY``); ``teachers`` maps a task to its expert's folder."""

        def __init__(self, *args, teachers: Mapping[str, str | Path], weight: float, **kwargs):
            from transformers import AutoModelForCausalLM

            kwargs["args"].remove_unused_columns = False  # the task column must reach the collator
            super().__init__(*args, **kwargs)
            self.distill_weight = float(weight)
            self.teacher_tasks = sorted(teachers)
            device = self.args.device
            self.teachers = [AutoModelForCausalLM.from_pretrained(str(teachers[t]), dtype=torch.float32)
                             .to(device).eval().requires_grad_(False) for t in self.teacher_tasks]
            index = {t: i for i, t in enumerate(self.teacher_tasks)}
            collate = self.data_collator

            def with_teacher_index(examples):
                batch = collate(examples)
                batch["teacher_index"] = torch.tensor([index.get(e.get(TASK_KEY), -1) for e in examples])
                return batch

            self.data_collator = with_teacher_index

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            teacher_index = inputs.pop("teacher_index", None)
            if teacher_index is None or not bool((teacher_index >= 0).any()) or self.distill_weight == 0:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            targets = inputs["labels"][:, 1:]
            # only the positions that predict an answer token of some row get logits (vocab is 49k wide)
            keep = (targets != -100).any(0).nonzero().flatten()
            targets = targets[:, keep]
            fwd = {"input_ids": inputs["input_ids"], "attention_mask": inputs.get("attention_mask"),
                   "use_cache": False, "logits_to_keep": keep}
            student = model(**fwd).logits
            teacher = torch.zeros_like(student)
            with torch.no_grad():
                for i in teacher_index.unique().tolist():
                    if i < 0:
                        continue
                    rows = teacher_index == i
                    teacher[rows] = self.teachers[i](
                        input_ids=fwd["input_ids"][rows], attention_mask=fwd["attention_mask"][rows],
                        use_cache=False, logits_to_keep=keep).logits.to(teacher.dtype)
            per_token = distill_token_losses(student, teacher, targets, teacher_index >= 0, self.distill_weight)
            mask = targets != -100
            num_tokens = mask.sum() if num_items_in_batch is None else num_items_in_batch
            loss = per_token.sum() / torch.as_tensor(num_tokens).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # as TRL's own loss: DDP averages the gradients
            return (loss, None) if return_outputs else loss

    return DistillSFTTrainer
