"""In-process scoring of a model on the sentiment_* tasks with lm-eval's own evaluator.

The ``lm_eval`` command re-indexes its ~14,700 built-in tasks on every call (about 12 s here);
building a TaskManager over our folder alone takes milliseconds, and the task objects built once are
reused for every model scored, which is what the evolution loop needs.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .data import Sampling
from .lm_tasks import evals_dir
from .tasks import TASKS, TaskSpec, get_task

# Metric names reported per task; "score" is the task's official metric.
REPORTED = ("score", "acc", "macro_f1", "micro_f1", "partial_f1", "p_gold", "brier")


class EvaluationError(RuntimeError):
    pass


def resolve_tasks(names: Sequence[str] | str | None) -> list[TaskSpec]:
    """Task names, lm-eval names, group names (SC/ABSA/MAST) or 'all' -> task specs."""
    if names is None or names == "all" or names == ["all"]:
        return list(TASKS.values())
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out: list[TaskSpec] = []
    for n in names:
        group = [t for t in TASKS.values() if t.group == n.upper()] if n.upper() in ("SC", "ABSA", "MAST") else []
        for spec in group or [get_task(n)]:
            if spec not in out:
                out.append(spec)
    return out


def quiet_lm_eval() -> None:
    """lm-eval warns on every task built with a custom dataset and on every in-memory model wrapped;
    both are expected here, so only errors get through."""
    for name in ("lm-eval", "lm_eval"):
        logging.getLogger(name).setLevel(logging.ERROR)


@dataclass
class Evaluator:
    """lm-eval task objects for some tasks on one data source and split, built once.

    ``limit`` keeps a seeded, label-stratified sample per task, by default ``proportional`` (each
    label its share of the split, so the score estimates the split's); ``num_demos`` puts that many
    solved training examples in front of each prompt.
    """

    tasks: Sequence[TaskSpec]
    data: str | None = None
    split: str = "test"
    limit: int | None = None
    seed: int = 0
    num_demos: int = 0
    batch_size: int = 16
    sampling: Sampling = "proportional"

    def __post_init__(self) -> None:
        from lm_eval.tasks import TaskManager, get_task_dict

        meta = {"split": self.split, "seed": self.seed, "num_demos": self.num_demos}
        if self.data is not None:
            meta["data"] = str(self.data)
        if self.limit:
            meta["limit"] = int(self.limit)
            meta["sampling"] = self.sampling
        quiet_lm_eval()
        tm = TaskManager(include_path=str(evals_dir()), include_defaults=False, metadata=meta)
        self.task_dict = get_task_dict([t.lm_eval_name for t in self.tasks], tm)

    def wrap(self, model, tokenizer, answer_window: bool = True):
        """An lm-eval LM around a model already in memory (weights changed in place are seen).

        ``answer_window`` scores multiple choice from the logits of the answer positions only
        (``fast_lm``: same requests and answers, less work); off, it is lm-eval's HFLM as is."""
        from lm_eval.models.huggingface import HFLM

        quiet_lm_eval()
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        kw = {"pretrained": model, "tokenizer": tokenizer, "batch_size": self.batch_size, "device": str(model.device)}
        if not answer_window:
            return HFLM(**kw)
        from .fast_lm import AnswerWindowHFLM

        return AnswerWindowHFLM(**kw, max_answer_tokens=self.max_answer_tokens(tokenizer))

    def max_answer_tokens(self, tokenizer) -> int:
        """Longest label of these tasks in tokens, as lm-eval appends it (after a space), plus a
        margin of 2 for tokens merged across the join."""
        lengths = [len(tokenizer(" " + label, add_special_tokens=False)["input_ids"])
                   for spec in self.tasks if not spec.is_generative for label in spec.labels]
        return max(lengths, default=0) + 2

    def _run(self, lm, log_samples: bool):
        import lm_eval.evaluator

        return lm_eval.evaluator.evaluate(lm=lm, task_dict=self.task_dict, bootstrap_iters=0,
                                          log_samples=log_samples, verbosity="WARNING")

    def predict(self, lm, with_probs: bool = False):
        """The model's answer per doc, in doc order: a label (the most likely choice), or a list of
        triplets (teacher labels). With ``with_probs`` also, from the same pass, each label task's
        probabilities over its labels per doc (``None`` for a triplet task): ``(answers, probs)``."""
        from .tasks import parse_triplets

        _, logged = self.logged_samples(lm)
        preds, probs = {}, {}
        for spec in self.tasks:
            samples = logged[spec.name]
            if spec.is_generative:
                preds[spec.name] = [parse_triplets(s["filtered_resps"][0]) for s in samples]
                probs[spec.name] = None
            else:
                lls = choice_loglikelihoods(samples)
                preds[spec.name] = [spec.labels[max(range(len(v)), key=v.__getitem__)] for v in lls]
                probs[spec.name] = [label_probs(v) for v in lls]
        return (preds, probs) if with_probs else preds

    def logged_samples(self, lm) -> tuple[dict, dict[str, list[dict]]]:
        """One run with samples logged: lm-eval's results per task, and per task name its samples
        in doc order."""
        out = self._run(lm, log_samples=True) or {}
        return out.get("results", {}), {spec.name: sorted(out["samples"][spec.lm_eval_name], key=lambda s: s["doc_id"])
                                        for spec in self.tasks}

    def evaluate(self, lm) -> dict[str, dict[str, float]]:
        """Scores per task name: ``{"sst2": {"score": .., "acc": .., ...}}``; raises on NaN."""
        out = self._run(lm, log_samples=False)
        if out is None:  # non-zero ranks in a distributed run get nothing back
            return {}
        scores = {}
        for spec in self.tasks:
            res = out["results"].get(spec.lm_eval_name)
            if res is None:
                raise EvaluationError(f"lm-eval returned no result for {spec.lm_eval_name}")
            row = {m: float(res[f"{m},none"]) for m in REPORTED if f"{m},none" in res}
            bad = [m for m, v in row.items() if math.isnan(v)]
            if bad:
                raise EvaluationError(f"{spec.lm_eval_name}: metric(s) {', '.join(bad)} came out NaN")
            scores[spec.name] = row
        return scores


def choice_loglikelihoods(samples: Sequence[Mapping]) -> list[list[float]]:
    """Per multiple-choice sample, the log-likelihood of each choice, in choice order."""
    return [[float(r[0]) for r in s["filtered_resps"]] for s in samples]


def label_probs(lls: Sequence[float]) -> list[float]:
    """The choices' log-likelihoods as probabilities over the choices (a softmax)."""
    top = max(lls)
    e = [math.exp(v - top) for v in lls]
    total = sum(e)
    return [v / total for v in e]


def choice_answers(logged: Mapping[str, Sequence[Mapping]]) -> dict[str, dict[str, list]]:
    """Per task of lm-eval's logged samples: every row's gold label index (``gold``) and choice
    log-likelihoods (``lls``), in row order."""
    return {t: {"gold": [int(s["doc"]["gold"]) for s in v], "lls": choice_loglikelihoods(v)}
            for t, v in logged.items()}


def evaluate_model(model_ref: str, tasks=None, data=None, split: str = "test", limit=None,
                   num_demos: int = 0, batch_size: int = 16, dtype=None) -> dict:
    """Load a model folder / short name / hub id (in ``dtype``, default float32) and score it;
    adds wall time per run."""
    from .models import load_model_and_tokenizer

    specs = resolve_tasks(tasks)
    model, tok = load_model_and_tokenizer(model_ref, dtype=dtype)
    ev = Evaluator(specs, data=data, split=split, limit=limit, num_demos=num_demos, batch_size=batch_size)
    t0 = time.perf_counter()
    scores = ev.evaluate(ev.wrap(model, tok))
    return {"scores": scores, "seconds": time.perf_counter() - t0}


def group_means(scores: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Mean official score per group present, and overall (mean over tasks)."""
    out = {}
    for g in ("SC", "ABSA", "MAST"):
        vals = [s["score"] for n, s in scores.items() if get_task(n).group == g]
        if vals:
            out[g] = sum(vals) / len(vals)
    if scores:
        out["all"] = sum(s["score"] for s in scores.values()) / len(scores)
    return out


def format_table(columns: Mapping[str, Mapping[str, Mapping[str, float]]], digits: int = 3) -> str:
    """A Markdown table: one row per task (plus group means), one column per system."""
    systems = list(columns)
    tasks = [t for t in TASKS if any(t in columns[s] for s in systems)]
    head = "| task | metric | " + " | ".join(systems) + " |"
    lines = [head, "|" + "---|" * (len(systems) + 2)]
    for t in tasks:
        cells = [f"{columns[s][t]['score']:.{digits}f}" if t in columns[s] else "" for s in systems]
        lines.append(f"| {t} | {TASKS[t].metric} | " + " | ".join(cells) + " |")
    means = {s: group_means(columns[s]) for s in systems}
    for g in ("SC", "ABSA", "MAST", "all"):
        if any(g in means[s] for s in systems):
            cells = [f"{means[s][g]:.{digits}f}" if g in means[s] else "" for s in systems]
            lines.append(f"| **mean {g}** | | " + " | ".join(cells) + " |")
    return "\n".join(lines)
