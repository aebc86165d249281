"""Teacher-labelled training rows for the curriculum (``curriculum.teacher_rows``).

The paper's weak data: inputs without a gold label, answered by a teacher. Here a task's teacher is its
own expert and the inputs are the task's ``train`` rows no expert trained on, drawn at random (not by
label: a user of unlabelled data has none to stratify by). Each task's answers are computed once and
kept in ``<output_dir>/curriculum/teacher/<task>/rows_<n>.jsonl`` (a data folder, read back through
:class:`~memmcl_merge.data.LocalSource`, which checks every row) beside a stamp of the expert that gave
them, so every curriculum seed and a comparator (the benchmark's multitask SFT) train on the same rows,
and a retrained expert answers them again. ``curriculum.teacher_pick`` keeps a share of a label task's
rows, the most confident per answered label in the train split's label shares (the expert's label
probabilities are kept beside its answers, ``rows_<n>.probs.json``).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from pathlib import Path


def teacher_dir(cfg) -> Path:
    return cfg.output_dir / "curriculum" / "teacher"


def teacher_rows_for(cfg, task: str) -> int:
    """How many teacher rows ``task`` gets: ``curriculum.teacher_rows`` where ``teacher_tasks`` names it
    (or names none), else 0."""
    cur = cfg.curriculum
    listed = cur.teacher_tasks
    return cur.teacher_rows if listed is None or task.removeprefix("sentiment_") in listed else 0


def _expert_stamp(folder: Path) -> str:
    """Identifies one trained expert: a hash of its completion marker (rows, settings, seconds)."""
    from .experts import MARKER

    return hashlib.sha256((folder / MARKER).read_bytes()).hexdigest()


def teacher_docs(cfg, task: str, n: int, progress=print) -> list[dict]:
    """``n`` unseen train docs of ``task`` (fewer where the split has fewer) with the labels (or
    triplets) its own expert gives them."""
    from .data import LocalSource, load_docs, write_jsonl
    from .distill import teacher_folders
    from .evolve import teacher_labels, unseen_train_docs
    from .io import read_json, write_json
    from .tasks import get_task

    task = task.removeprefix("sentiment_")
    spec = get_task(task)
    expert = teacher_folders(cfg, [task], "curriculum.teacher_rows", "set teacher_rows to 0")[task]
    source, split = LocalSource(teacher_dir(cfg)), f"rows_{n}"
    path = source.path(task, split)
    stamp_path, probs_path = path.with_suffix(".json"), path.with_suffix(".probs.json")
    stamp = {"expert": str(expert), "expert_stamp": _expert_stamp(expert), "n": n, "seed": cfg.experts.train.seed}
    if path.is_file() and stamp_path.is_file() and read_json(stamp_path) == stamp:
        labelled = source.load(spec, split)
    else:
        pool = unseen_train_docs(cfg, task)
        # a seed of its own: the experts' sample and the weak sets keep their draws
        docs = random.Random(f"teacher-rows:{cfg.experts.train.seed}:{task}").sample(pool, min(n, len(pool)))
        labelled, probs = teacher_labels(cfg, task, docs, teacher_dir(cfg), teacher="experts", with_probs=True)
        write_jsonl(path, labelled)
        if probs is not None:  # the label probabilities of the same pass, for teacher_pick
            write_json(probs_path, {"stamp": stamp, "probs": probs})
        write_json(stamp_path, stamp)  # written last: a stamp always describes a complete file
        if progress:
            progress(f"teacher rows {task}: {len(labelled)} unseen train rows answered by its expert -> {path}")
    share = cfg.curriculum.teacher_pick
    if share is None or spec.is_generative:
        return labelled
    kept = read_json(probs_path) if probs_path.is_file() else None
    if kept is None or kept.get("stamp") != stamp:  # rows answered before probabilities were kept
        kept = {"stamp": stamp, "probs": answer_probs(cfg, task, labelled, expert)}
        write_json(probs_path, kept)
    prior = label_shares(spec, load_docs(spec, "train", cfg.data))
    picked = confident_pick(kept["probs"], spec.labels, prior, share)
    if progress:
        progress(f"teacher rows {task}: kept {len(picked)} of {len(labelled)}, the most confident per answered "
                 f"label in the train split's label shares (teacher_pick {share})")
    return [labelled[i] for i in picked]


def label_shares(spec, docs) -> dict[str, float]:
    """Each label's share of ``docs``."""
    counts = Counter(d["label"] for d in docs)
    return {lab: counts[lab] / max(len(docs), 1) for lab in spec.labels}


def answer_probs(cfg, task: str, docs: list[dict], expert: Path) -> list[list[float]]:
    """Per doc, ``expert``'s probabilities over the task's labels, scored as ``teacher_labels`` answers
    (no demonstrations); the labels the docs carry are not read."""
    from .evolve import teacher_labels

    return teacher_labels(cfg, task, docs, teacher_dir(cfg), teacher=str(expert), with_probs=True)[1]


def confident_pick(probs: list[list[float]], labels, prior: dict[str, float], share: float) -> list[int]:
    """Indices (in row order) of ``share`` of the rows: per answered label (the argmax), its most
    confident rows, as many as that label's ``prior`` share of the pick (fewer where it has fewer)."""
    k = round(share * len(probs))
    answer = [max(range(len(p)), key=p.__getitem__) for p in probs]
    order = sorted(range(len(probs)), key=lambda j: -max(probs[j]))
    picked = []
    for i, lab in enumerate(labels):
        picked += [j for j in order if answer[j] == i][:round(prior.get(lab, 0.0) * k)]
    return sorted(picked)


def teacher_train_rows(cfg, task: str, n: int, train_cfg, progress=print) -> list[dict[str, str]]:
    """SFT rows of :func:`teacher_docs`, with ``train_cfg.num_demos`` demonstrations from the train split
    (gold-labelled, as every task's demonstrations)."""
    from .data import load_docs
    from .experts import sft_rows
    from .tasks import get_task

    spec = get_task(task)
    pool = load_docs(spec, "train", cfg.data)
    return sft_rows(spec, teacher_docs(cfg, task, n, progress), pool, train_cfg.num_demos, train_cfg.seed)
