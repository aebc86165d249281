"""Meta-data driven curriculum SFT on the winning merge: easy tasks first, hard tasks last.

Difficulty of a task = weighted mean of features in [0, 1] (weights in the ``curriculum.weights``
section of the run YAML; a feature whose signal is missing is left out and the rest re-weighted):

=============  =========================================================================
classes        log2(number of classes) / log2(largest number of classes in the run)
structure      1 for structured output (triplets), 0 for a single label
input_length   mean words per input / the longest mean in the run
label_entropy  entropy of the training labels / log2(number of classes)  (balanced = harder)
base_gap       1 - the base model's dev score (recorded by the experts step)
merge_gap      the expert's dev score - the merged model's weak-set score, clipped at 0
               (what merging lost on that task, so what the curriculum has to win back;
               weight 3 by default, the others 0.5-1: benchmarks/RESULTS.md, session 37)
=============  =========================================================================

Training is ONE TRL run with a sequential sampler over the rows in curriculum order, not one run
per task: one learning-rate schedule and optimiser state carry across the whole curriculum. The
order (``curriculum.order``):

- ``mixed_easy_first`` (default): task k of n, easiest first, joins the mix at ``mix_span * k/(n-1)``
  of training and its rows are spread from there to the end, so the easy tasks start alone and every
  task stays in the mix to the end (a competence-style schedule).
- ``easy_to_hard``: one phase per task, plus ``replay`` x its size of rows from the easier phases.
  Measured worse on real data (benchmarks/RESULTS.md): under one decaying schedule the hardest task,
  last, gets the least learning rate and too few steps to learn its output format.
- ``shuffled``: the same rows without replay in random order, the control for what the order is worth.

``curriculum.task_order`` pins the ranking itself (the easiest first) in place of the difficulty
score, e.g. to train one run's start model on another run's plan.

How much of the training each task gets is meta-data driven too: ``curriculum.passes = (lo, hi)``
gives the easiest task ``lo`` passes over its rows and the hardest ``hi``, linearly by rank between
(default (0.5, 1.5), measured in benchmarks/RESULTS.md; (1, 1) is one pass each). With lo + hi = 2
the total number of steps is unchanged; the steps move from the tasks the merge already handles to
the ones it does not. One decaying schedule runs over the whole order, so a task that joins late is
trained at less than its share of the learning rate; the run prints and records that share per task
(``lr_share`` in ``memmcl_curriculum.json``: 1 = the rows spread evenly, as in a shuffled SFT).

A killed training continues from its newest checkpoint (every ``curriculum.train.checkpoint_minutes``)
in ``.<output name>.checkpoint`` beside the output, removed once the output is in place.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .tasks import TaskMeta, get_task

MARKER = "memmcl_curriculum.json"
FEATURES = ("classes", "structure", "input_length", "label_entropy", "base_gap", "merge_gap")


@dataclass(frozen=True)
class TaskDifficulty:
    task: str
    parts: dict[str, float]  # feature -> value in [0, 1] (only features with a signal)
    score: float


def measured_signals(cfg) -> dict[str, dict[str, float]]:
    """Per task: the base's and the expert's dev scores (experts step) and the merged model's
    weak-set score (last evolution search), where those steps have run."""
    from .evolve import MARKER as SEARCH_MARKER
    from .evolve import stage_dir
    from .experts import MARKER as EXPERT_MARKER
    from .io import read_json

    out: dict[str, dict[str, float]] = {t: {} for t in cfg.tasks}
    for t in cfg.tasks:
        marker = cfg.experts_dir / t / EXPERT_MARKER
        if marker.is_file():
            dev = read_json(marker).get("dev", {})
            if (dev.get("base") or {}).get("score") is not None:
                out[t]["base"] = float(dev["base"]["score"])
            if (dev.get("expert") or {}).get("score") is not None:
                out[t]["expert"] = float(dev["expert"]["score"])
    last = stage_dir(cfg, cfg.plan()[-1].key) / SEARCH_MARKER
    if last.is_file():
        for t, row in read_json(last).get("best_scores", {}).items():
            if t in out:
                out[t]["merged"] = float(row["score"])
    return out


def plan_curriculum(cfg, metas: Mapping[str, TaskMeta] | None = None,
                    signals: Mapping[str, Mapping[str, float]] | None = None) -> list[TaskDifficulty]:
    """Tasks of the run, easiest first, each with the parts of its difficulty score."""
    from .data import load_docs

    tasks = list(cfg.tasks)
    if metas is None:
        metas = {t: TaskMeta.measure(get_task(t), load_docs(t, "train", cfg.data)) for t in tasks}
    if signals is None:
        signals = measured_signals(cfg)
    weights = cfg.curriculum.weights.model_dump()
    max_classes = max(metas[t].num_classes for t in tasks)
    max_len = max(metas[t].mean_input_words for t in tasks)
    out = []
    for t in tasks:
        m, s = metas[t], signals.get(t, {})
        parts = {
            "classes": math.log2(m.num_classes) / math.log2(max_classes) if max_classes > 1 else 0.0,
            "structure": 1.0 if m.output_structure != "label" else 0.0,
            "input_length": m.mean_input_words / max_len if max_len else 0.0,
            "label_entropy": m.label_entropy / math.log2(m.num_classes) if m.num_classes > 1 else 0.0,
        }
        if "base" in s:
            parts["base_gap"] = min(1.0, max(0.0, 1.0 - s["base"]))
        if "expert" in s and "merged" in s:
            parts["merge_gap"] = min(1.0, max(0.0, s["expert"] - s["merged"]))
        used = {k: v for k, v in parts.items() if weights.get(k, 0.0) > 0}
        total_w = sum(weights[k] for k in used)
        score = sum(weights[k] * v for k, v in used.items()) / total_w if total_w else 0.0
        out.append(TaskDifficulty(t, {k: round(v, 4) for k, v in parts.items()}, round(score, 4)))
    pinned = cfg.curriculum.task_order
    if pinned is not None:  # the config checked it lists every task once, by its short name
        return sorted(out, key=lambda d: pinned.index(d.task))
    return sorted(out, key=lambda d: (d.score, d.task))


def format_plan(plan: Sequence[TaskDifficulty], weights: Mapping[str, float]) -> str:
    head = f"{'#':>2} {'task':16} {'difficulty':>10} " + " ".join(f"{f:>13}" for f in FEATURES)
    lines = [head, " " * 30 + "weights: " + " ".join(f"{weights.get(f, 0):>13g}" for f in FEATURES[:-1])
             + f" {weights.get(FEATURES[-1], 0):>13g}"]
    for i, d in enumerate(plan, 1):
        cells = " ".join(f"{d.parts[f]:>13.3f}" if f in d.parts else f"{'-':>13}" for f in FEATURES)
        lines.append(f"{i:>2} {d.task:16} {d.score:>10.3f} {cells}")
    return "\n".join(lines)


def task_passes(passes: tuple[float, float], rank: int, n: int) -> float:
    """Passes over the rows of the task of difficulty ``rank`` (0 = easiest) of ``n``: linear by rank
    between the easiest's and the hardest's, so (lo, hi) with lo + hi = 2 keeps the total steps."""
    lo, hi = passes
    return lo + (hi - lo) * rank / max(1, n - 1)


def allocate(rng: random.Random, rows: list[dict], passes: float) -> list[dict]:
    """Whole copies of ``rows`` for the whole passes, plus a seeded sample for the fraction."""
    whole, frac = divmod(passes, 1.0)
    return rows * int(whole) + rng.sample(rows, round(frac * len(rows)))


def curriculum_rows(cfg, plan: Sequence[TaskDifficulty]) -> tuple[list[dict], list[dict]]:
    """The SFT rows in training order, and per row its phase and task (for checks and the report)."""
    from .experts import task_train_rows
    from .teacher_rows import teacher_rows_for, teacher_train_rows

    cur = cfg.curriculum
    # each task's rows are the experts' sample (drawn with their seed): curriculum.train.seed changes
    # how the model is trained (LoRA init, the order here), never which data it sees
    sample = cur.train.model_copy(update={"seed": cfg.experts.train.seed})
    seed = cfg.seed + cur.train.seed  # a training seed of 0 leaves the run's order as it was
    rng = random.Random(f"curriculum:{seed}")
    rows, index, seen = [], [], []
    phased = cur.order == "easy_to_hard"
    keys, mix_rng = [], random.Random(f"curriculum-mix:{seed}")  # mixed_easy_first: place in [0, 1)
    # the fractional passes draw from their own stream, so every order (and the shuffled control)
    # trains on the same rows
    pass_rng = random.Random(f"curriculum-passes:{seed}")
    for phase, d in enumerate(plan):
        task_rows = task_train_rows(d.task, cfg.data, sample)
        passes = task_passes(cur.passes, phase, len(plan))
        if n_teacher := teacher_rows_for(cfg, d.task):
            gold = len(task_rows)
            task_rows += teacher_train_rows(cfg, d.task, n_teacher, sample, progress=None)
            if cur.teacher_steps == "same":  # the gold rows' steps, drawn from gold and teacher rows
                passes *= gold / len(task_rows)
        own = allocate(pass_rng, [dict(r, task=d.task) for r in task_rows], passes)
        k = round(cur.replay * len(own)) if seen and phased else 0
        replay = rng.sample(seen, min(k, len(seen)))
        block = own + replay
        rng.shuffle(block)
        entry = cur.mix_span * phase / max(1, len(plan) - 1)
        for r in block:
            keys.append(entry + (1.0 - entry) * mix_rng.random())
            rows.append({"prompt": r["prompt"], "completion": r["completion"]})
            index.append({"phase": phase, "task": r["task"], "replay": r["task"] != d.task})
        seen.extend(own)
    if not phased:
        perm = list(range(len(rows)))
        if cur.order == "shuffled":
            rng.shuffle(perm)
        else:
            perm.sort(key=keys.__getitem__)
        rows, index = [rows[i] for i in perm], [index[i] for i in perm]
    return rows, index


def lr_shares(index: Sequence[Mapping], train) -> dict[str, float]:
    """Per task: the mean learning rate its rows are trained at, over the mean of all rows.

    One schedule runs over the whole curriculum, so where a task's rows sit decides the learning rate
    they get: under a decaying schedule a task that joins late is trained at less than its share
    (1.0 = what the same rows get spread evenly, as in a shuffled multitask SFT). Passes times this
    share are the task's passes at the run's mean learning rate. The schedule is transformers' own
    (``train.lr_scheduler``, warm-up ``train.warmup_ratio``), read one step at a time.
    """
    import torch
    from transformers import get_scheduler

    if not index:
        return {}
    per_step = train.batch_size * train.gradient_accumulation_steps
    steps_per_epoch = math.ceil(len(index) / per_step)
    total = train.max_steps or math.ceil(steps_per_epoch * train.epochs)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = get_scheduler(train.lr_scheduler, opt, num_warmup_steps=math.ceil(total * train.warmup_ratio),
                          num_training_steps=total)
    rates = []
    for _ in range(total):
        rates.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    # a row is seen at its step in every epoch (the sampler is sequential), so its rate is the mean
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for i, ix in enumerate(index):
        seen = [rates[s] for s in range(i // per_step, total, steps_per_epoch)]
        sums[ix["task"]] = sums.get(ix["task"], 0.0) + (sum(seen) / len(seen) if seen else 0.0)
        counts[ix["task"]] = counts.get(ix["task"], 0) + 1
    mean = sum(sums.values()) / len(index)
    return {t: round(sums[t] / counts[t] / mean, 4) if mean else 0.0 for t in sums}


def start_model_dir(cfg) -> Path:
    from .evolve import final_model_dir

    return Path(cfg.curriculum.start_model) if cfg.curriculum.start_model else final_model_dir(cfg)


def curriculum_dir(cfg) -> Path:
    return cfg.output_dir / "curriculum"


def curriculum_model_dir(cfg) -> Path:
    """The curriculum's output, the run's final model."""
    return cfg.output_dir / "final"


def run_curriculum(cfg, progress=print, out: Path | None = None) -> dict:
    """Train the merged model easy -> hard into ``out`` (default ``<output_dir>/final``), complete or
    absent."""
    from .config import changed_settings
    from .distill import TASK_KEY, distill_trainer_class, distilled_tasks, teacher_folders
    from .experts import checkpoint_beside, sft_train
    from .io import fresh_tmp_dir, read_json, replace_dir, write_json

    work, final = curriculum_dir(cfg), Path(out) if out is not None else curriculum_model_dir(cfg)
    marker = final / MARKER
    start = start_model_dir(cfg)
    if marker.is_file():
        done = read_json(marker)
        # a model trained with other settings must not pass for this one (resuming after an edit)
        changed = changed_settings(done.get("config"), cfg.curriculum)
        if done.get("start_model") != str(start):
            changed.append("start_model (the model trained from)")
        if changed:
            raise ValueError(f"curriculum: {final} was trained with other settings (differs in: "
                             f"{', '.join(changed)}); delete that folder to train it again with these")
        if progress:
            progress(f"curriculum: done already ({final}), skipped")
        return done
    if not (start / "config.json").is_file():
        raise FileNotFoundError(f"curriculum: no start model at {start}; run the evolution first (memmcl evolve)")
    if cfg.curriculum.seeds > 1:
        return _soup_of_seeds(cfg, final, progress)
    plan = plan_curriculum(cfg)
    if progress:
        how = "order pinned by curriculum.task_order" if cfg.curriculum.task_order else "easiest first"
        progress(f"curriculum plan ({how}):\n" + format_plan(plan, cfg.curriculum.weights.model_dump()))
    if cfg.curriculum.teacher_rows:
        from .teacher_rows import teacher_docs, teacher_rows_for

        for d in plan:  # answered once, before training (a resumed run reuses the answers)
            if n := teacher_rows_for(cfg, d.task):
                teacher_docs(cfg, d.task, n, progress)
    rows, index = curriculum_rows(cfg, plan)
    shares = lr_shares(index, cfg.curriculum.train)
    if progress:
        progress("learning-rate share per task (1 = rows spread evenly over the schedule): "
                 + ", ".join(f"{t} {v:.2f}" for t, v in shares.items()))
    distill = {}
    if distilled := distilled_tasks(cfg):
        distill = {"trainer_cls": distill_trainer_class(),
                   "trainer_kwargs": {"teachers": teacher_folders(cfg, distilled),
                                      "weight": cfg.curriculum.distill.weight}}
        rows = [dict(r, **{TASK_KEY: ix["task"]}) for r, ix in zip(rows, index)]
        if progress:
            progress(f"curriculum: distilling {', '.join(distilled)} from their own experts "
                     f"(weight {cfg.curriculum.distill.weight})")
    tmp = fresh_tmp_dir(work / "model")  # work/.model.tmp-<pid>
    t0 = time.perf_counter()
    ckpt = checkpoint_beside(final)  # each output (benchmark variants of one run too) resumes its own
    res = sft_train(str(start), None, rows, cfg.curriculum.train, tmp, sequential=True, progress=bool(progress),
                    checkpoint_dir=ckpt, **distill)
    record = {"start_model": str(start), "order": [d.task for d in plan],
              "plan": [d.__dict__ for d in plan], "rows": len(rows),
              "phases": [{"task": d.task, "rows": sum(1 for i in index if i["phase"] == p),
                          "lr_share": shares.get(d.task)} for p, d in enumerate(plan)],
              "config": cfg.curriculum.model_dump(mode="json"), "seconds": time.perf_counter() - t0,
              "train": res.to_json()}
    write_json(tmp / MARKER, record)
    replace_dir(tmp, final)
    shutil.rmtree(ckpt, ignore_errors=True)
    if progress:
        progress(f"curriculum: {len(rows)} examples in {record['seconds']:.0f} s -> {final}")
    return record


def _soup_of_seeds(cfg, final: Path, progress) -> dict:
    """``curriculum.seeds`` N > 1: N curricula from the same start (each resumable, kept in
    ``<output_dir>/curriculum/seed_<s>``), averaged into ``final`` by mergekit's linear method."""
    from .io import write_json
    from .soup import soup_models

    cur = cfg.curriculum
    members, records = [], []
    for seed in range(cur.train.seed, cur.train.seed + cur.seeds):
        if progress:
            progress(f"curriculum: training seed {seed} ({seed - cur.train.seed + 1} of {cur.seeds})")
        one = cur.model_copy(update={"seeds": 1, "train": cur.train.model_copy(update={"seed": seed})})
        members.append(curriculum_dir(cfg) / f"seed_{seed}")
        records.append(run_curriculum(cfg.model_copy(update={"curriculum": one}), progress, out=members[-1]))
    t0 = time.perf_counter()
    recipe = cfg.output_dir / "recipes" / f"{final.name}_soup.yml"
    soup_models(members, final, recipe, comment=f"MEM-MCL curriculum: the soup of {cur.seeds} training seeds")
    first = records[0]
    record = {**{k: first[k] for k in ("start_model", "order", "plan", "rows", "phases")},
              "config": cur.model_dump(mode="json"), "members": [str(m) for m in members],
              "recipe": str(recipe), "seconds": sum(r["seconds"] for r in records) + time.perf_counter() - t0}
    write_json(final / MARKER, record)
    if progress:
        progress(f"curriculum: soup of {cur.seeds} seeds -> {final} (recipe {recipe})")
    return record
