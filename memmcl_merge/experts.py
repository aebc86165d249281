"""Stage 0 of MEM-MCL: one expert per task, fine-tuned from the base model with TRL's ``SFTTrainer``.

Two layers:

* :func:`sft_train` is the reusable SFT step (the curriculum stage calls it too, on a merged model and
  an ordered dataset): prompt/completion rows in, a trained model out, optionally saved as a plain
  safetensors folder (LoRA merged back into the weights, no adapter files) that mergekit can read.
* :func:`train_experts` trains one expert per task of a run config into ``<output_dir>/experts/<task>``.
  Each expert is a pure function of (config, task) (:func:`train_expert`), so experts can later be
  fanned out one per device. A folder is only ever complete (it has ``memmcl_expert.json``) or
  absent: training happens in ``.<task>.tmp-<pid>`` next to it, renamed into place at the end, and a
  killed training resumes from its newest checkpoint in ``.<task>.checkpoint`` (``checkpoint_minutes``).

The training prompt of a task is built by :func:`memmcl_merge.lm_tasks.build_rows`, the very function
lm-eval's dataset hook uses, and the completion is ``" " + answer``: the tokens trained on are the
tokens lm-eval scores (context = prompt, continuation = ``" " + answer``), plus the EOS TRL appends.

torch, transformers, TRL and peft are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import RunConfig, TrainConfig, changed_settings
from .tasks import TaskSpec, get_task

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "BASE_SCORES_FILE",
    "MARKER",
    "ExpertResult",
    "SFTResult",
    "build_sft_config",
    "checkpoint_beside",
    "expert_folder",
    "is_complete",
    "make_trainer",
    "resolve_precision",
    "rows_sha256",
    "save_plain_model",
    "sft_rows",
    "sft_train",
    "task_train_rows",
    "train_expert",
    "train_experts",
]

log = logging.getLogger(__name__)

MARKER = "memmcl_expert.json"
BASE_SCORES_FILE = "base_dev_scores.json"
DEV_SPLIT = "dev"
_TMP_INFIX = ".tmp-"


# --------------------------------------------------------------------------------------- the data


def sft_rows(spec: TaskSpec, docs: Sequence[Mapping], demo_pool: Sequence[Mapping] = (), num_demos: int = 0,
             seed: int = 0) -> list[dict[str, str]]:
    """Docs -> ``{"prompt", "completion"}`` rows; the prompt is exactly the one lm-eval scores."""
    from .lm_tasks import build_rows

    return [{"prompt": r["prompt"], "completion": " " + r["answer"]}
            for r in build_rows(spec, docs, demo_pool, num_demos, seed)]


def task_train_docs(spec: TaskSpec, pool: Sequence[Mapping], train_cfg: TrainConfig) -> list[dict]:
    """The docs of a task's ``train`` split (``pool``) its SFT rows are built from: a seeded sample of
    ``max_examples`` (label shares by ``train_cfg.sampling``), or all of them."""
    from .data import sample_docs

    if not train_cfg.max_examples:
        return list(pool)
    return sample_docs(spec, pool, train_cfg.max_examples, train_cfg.seed, train_cfg.sampling)


def task_train_rows(spec: TaskSpec | str, data: str | None, train_cfg: TrainConfig) -> list[dict[str, str]]:
    """A task's SFT rows (:func:`task_train_docs`), each with ``num_demos`` demonstrations drawn from
    the same ``train`` split (never dev/test)."""
    from .data import load_docs

    spec = get_task(spec) if isinstance(spec, str) else spec
    pool = load_docs(spec, "train", data)
    return sft_rows(spec, task_train_docs(spec, pool, train_cfg), pool, train_cfg.num_demos, train_cfg.seed)


def rows_sha256(rows: Sequence[Mapping[str, str]]) -> str:
    """A hash of the training rows (order included), recorded next to each expert."""
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps({"prompt": r["prompt"], "completion": r["completion"]}, ensure_ascii=False,
                            sort_keys=True).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


# ----------------------------------------------------------------------------------- the trainer


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_precision(train_cfg: TrainConfig) -> str:
    """``"bf16"`` or ``"fp32"``: ``auto`` is bf16 on a GPU that supports it, fp32 everywhere else."""
    if train_cfg.dtype == "bfloat16":
        return "bf16"
    if train_cfg.dtype == "float32":
        return "fp32"
    import torch

    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def build_sft_config(train_cfg: TrainConfig, scratch_dir: str | Path, *, sequential: bool = False,
                     progress: bool = True, precision: str | None = None):
    """A TRL ``SFTConfig`` with every GPU-minded default of TRL 1.x set explicitly.

    TRL's own defaults are ``bf16=True``, ``gradient_checkpointing=True``, ``learning_rate=2e-5``,
    ``max_length=1024``, checkpoints every 500 steps and reporting to every installed tracker.
    """
    from trl import SFTConfig

    precision = precision or resolve_precision(train_cfg)
    cuda = _cuda()
    # transformers 5.x renamed gradient_checkpointing to activation_checkpointing (the old name warns);
    # TRL's default for it is True, so it is set explicitly under whichever name this version has.
    ckpt_name = ("activation_checkpointing" if "activation_checkpointing" in SFTConfig.__dataclass_fields__
                 else "gradient_checkpointing")
    return SFTConfig(
        **{ckpt_name: False},
        output_dir=str(scratch_dir),
        # optimisation
        learning_rate=train_cfg.learning_rate,
        per_device_train_batch_size=train_cfg.batch_size,
        gradient_accumulation_steps=train_cfg.gradient_accumulation_steps,
        num_train_epochs=train_cfg.epochs,
        max_steps=train_cfg.max_steps or -1,
        warmup_steps=train_cfg.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        weight_decay=train_cfg.weight_decay,
        lr_scheduler_type=train_cfg.lr_scheduler,
        seed=train_cfg.seed,
        data_seed=train_cfg.seed,
        # precision and devices: fp32 unless bf16 is asked (or a bf16 GPU with dtype auto)
        bf16=precision == "bf16",
        fp16=False,
        use_cpu=not cuda,  # never forced on a CUDA machine, so `accelerate launch` works as usual
        dataloader_num_workers=0,
        dataloader_pin_memory=cuda,
        # data: prompt/completion rows, completion-only loss, nothing dropped silently by truncation
        max_length=train_cfg.max_length,
        completion_only_loss=True,
        packing=False,
        shuffle_dataset=False,
        train_sampling_strategy="sequential" if sequential else "random",
        dataset_num_proc=None,
        # no scheduled checkpoints (sft_train's timer asks for them; only the newest is kept), no
        # trackers, no hub
        save_strategy="no",
        save_total_limit=1,
        eval_strategy="no",
        report_to="none",
        push_to_hub=False,
        logging_strategy="steps",
        logging_steps=train_cfg.logging_steps,
        disable_tqdm=not progress,
    )


def lora_config(train_cfg: TrainConfig):
    from peft import LoraConfig

    lc = train_cfg.lora
    targets = lc.target_modules if isinstance(lc.target_modules, str) else list(lc.target_modules)
    return LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=targets,
                      bias="none", task_type="CAUSAL_LM")


def _load(model_ref: str, precision: str, method: str):
    """Load a model reference for training: fp32 weights, except a frozen LoRA base under bf16."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .models import resolve_model

    path = resolve_model(model_ref)
    dtype = torch.bfloat16 if (precision == "bf16" and method == "lora") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer


def _drop_too_long(rows: Sequence[Mapping[str, str]], tokenizer, max_length: int) -> tuple[list[dict], int]:
    """Rows whose prompt + completion + EOS exceed ``max_length`` tokens are dropped (TRL would cut the
    completion off the end, training on a truncated answer). Returns (kept rows, number dropped)."""
    texts = [r["prompt"] + r["completion"] for r in rows]
    lengths = [len(ids) + 1 for ids in tokenizer(texts)["input_ids"]]
    kept = [dict(r) for r, n in zip(rows, lengths) if n <= max_length]
    return kept, len(rows) - len(kept)


def make_trainer(model: str | PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None,
                 rows: Sequence[Mapping[str, str]], train_cfg: TrainConfig, scratch_dir: str | Path, *,
                 sequential: bool = False, progress: bool = True, callbacks: Sequence[Any] = (),
                 trainer_cls=None, trainer_kwargs: Mapping[str, Any] | None = None):
    """Build (not run) the ``SFTTrainer``; returns ``(trainer, num_dropped_too_long)``.

    ``model`` is a model reference (folder, hub id, short name) or a model object (trained in place).
    ``trainer_cls`` (an ``SFTTrainer`` subclass, given ``trainer_kwargs``) replaces TRL's own, e.g.
    :func:`memmcl_merge.distill.distill_trainer_class`.
    """
    import datasets
    from trl import SFTTrainer

    if not rows:
        raise ValueError("no training rows given")
    bad = [k for k in ("prompt", "completion") if k not in rows[0]]
    if bad:
        raise ValueError(f"training rows need 'prompt' and 'completion' keys; missing {bad}")
    precision = resolve_precision(train_cfg)
    if isinstance(model, (str, os.PathLike)):
        model, loaded_tok = _load(str(model), precision, train_cfg.method)
        tokenizer = tokenizer or loaded_tok
    if tokenizer is None:
        raise ValueError("a tokenizer is needed when a model object is given")

    kept, dropped = _drop_too_long(rows, tokenizer, train_cfg.max_length)
    if dropped:
        log.warning("%d of %d rows are longer than max_length=%d tokens and were dropped",
                    dropped, len(rows), train_cfg.max_length)
    if not kept:
        raise ValueError(f"all {len(rows)} rows are longer than max_length={train_cfg.max_length} tokens; "
                         "raise train.max_length or lower train.num_demos")

    args = build_sft_config(train_cfg, scratch_dir, sequential=sequential, progress=progress,
                            precision=precision)
    peft_config = lora_config(train_cfg) if train_cfg.method == "lora" else None
    model.config.use_cache = False
    trainer = (trainer_cls or SFTTrainer)(
        model=model, args=args, train_dataset=datasets.Dataset.from_list(kept), processing_class=tokenizer,
        peft_config=peft_config, callbacks=list(callbacks) or None, **(trainer_kwargs or {}))
    if not progress:  # with tqdm off, transformers prints every log dict instead; quiet means quiet
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    return trainer, dropped


@dataclass
class SFTResult:
    """What :func:`sft_train` did. ``model`` (the trained, merged model in memory) is not serialised."""

    num_examples: int
    dropped_too_long: int
    steps: int
    epochs: float
    train_loss: float
    train_runtime_s: float
    examples_per_s: float
    wall_s: float
    method: str
    precision: str
    device: str
    data_sha256: str
    loss_history: list[list] = field(default_factory=list)
    out_dir: str | None = None
    # the step of the checkpoint a killed training continued from (its times cover the rest only)
    resumed_from_step: int | None = None
    model: Any = field(default=None, repr=False)
    tokenizer: Any = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("model", "tokenizer")}


def save_plain_model(model, tokenizer, out_dir: str | Path, save_dtype: str = "bfloat16") -> Path:
    """Save ``model`` + ``tokenizer`` as a plain safetensors folder in ``save_dtype``.

    The model is cast in place to ``save_dtype`` for the save and back to its dtype afterwards, so the
    model in memory then holds exactly the saved values (what a reload of the folder gives).
    """
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    orig_dtype = next(model.parameters()).dtype
    target = getattr(torch, save_dtype)
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if attr in vars(model.config):
            delattr(model.config, attr)
    model.config.use_cache = True
    model.to(target)
    model.config.dtype = target
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    model.to(orig_dtype)
    return out


@contextlib.contextmanager
def _progress_bars(enabled: bool):
    """Turn the datasets/transformers progress bars off for a quiet run (restored afterwards)."""
    if enabled:
        yield
        return
    import datasets.utils.logging as ds_logging
    import transformers.utils.logging as tf_logging

    was = [m.is_progress_bar_enabled() for m in (ds_logging, tf_logging)]
    ds_logging.disable_progress_bar()
    tf_logging.disable_progress_bar()
    try:
        yield
    finally:
        for m, on in zip((ds_logging, tf_logging), was):
            if on:
                m.enable_progress_bar()


# ------------------------------------------------------------------------ resumable training

RESUME_STAMP = "memmcl_resume.json"


def _timed_checkpoints(minutes: float):
    """A trainer callback that asks for a checkpoint every ``minutes`` of training (not at the last
    step, where the model is saved anyway)."""
    from transformers import TrainerCallback

    class TimedCheckpoints(TrainerCallback):
        def __init__(self):
            self.last = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step < state.max_steps and time.monotonic() - self.last >= minutes * 60:
                control.should_save = True

        def on_save(self, args, state, control, **kwargs):
            self.last = time.monotonic()

    return TimedCheckpoints()


def _checkpoint_step(folder: Path) -> int:
    tail = folder.name.rpartition("-")[2]
    return int(tail) if tail.isdigit() else -1


def resume_point(checkpoint_dir: Path, stamp: Mapping[str, Any]) -> Path | None:
    """The newest complete checkpoint in ``checkpoint_dir`` when it was written by a training of the same
    ``stamp`` (model, rows, settings); everything else there is removed and the stamp written.

    The trainer writes ``trainer_state.json`` after the weights, optimiser and RNG states, so a folder
    without it is a save a kill cut short.
    """
    from .io import read_json, write_json

    checkpoint_dir = Path(checkpoint_dir)
    stamp_file = checkpoint_dir / RESUME_STAMP
    try:
        same = read_json(stamp_file) == json.loads(json.dumps(stamp))
    except (OSError, ValueError):
        same = False
    if not same:
        if checkpoint_dir.exists():
            if any(checkpoint_dir.glob("checkpoint-*")):
                log.warning("%s holds checkpoints of another training (other model, rows or settings); "
                            "they are removed", checkpoint_dir)
            shutil.rmtree(checkpoint_dir)
        checkpoint_dir.mkdir(parents=True)
        write_json(stamp_file, dict(stamp))
        return None
    complete = [p for p in checkpoint_dir.glob("checkpoint-*")
                if _checkpoint_step(p) >= 0 and (p / "trainer_state.json").is_file()]
    newest = max(complete, key=_checkpoint_step, default=None)
    for p in checkpoint_dir.glob("checkpoint-*"):
        if p != newest:
            shutil.rmtree(p, ignore_errors=True)
    return newest


def checkpoint_beside(out: str | Path) -> Path:
    """Where the checkpoints of the training that makes ``out`` wait until ``out`` is in place:
    ``.<name>.checkpoint`` beside it, so every output resumes its own training."""
    out = Path(out)
    return out.with_name(f".{out.name}.checkpoint")


def _model_signature(path: str) -> list:
    """Names, sizes and modification times of a model folder's files: a changed model is a new one."""
    folder = Path(path)
    if not folder.is_dir():
        return [path]
    return sorted([p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in folder.iterdir() if p.is_file())


def sft_train(model: str | PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None,
              train_rows: Sequence[Mapping[str, str]], train_cfg: TrainConfig, out_dir: str | Path | None, *,
              sequential: bool = False, progress: bool = True, scratch_dir: str | Path | None = None,
              checkpoint_dir: str | Path | None = None, callbacks: Sequence[Any] = (),
              trainer_cls=None, trainer_kwargs: Mapping[str, Any] | None = None) -> SFTResult:
    """Supervised fine-tuning on prompt/completion rows with TRL, LoRA merged back (or full FT).

    * ``model``: a model reference (resolved with :func:`memmcl_merge.models.resolve_model`) or a model
      object, which is trained in place (with LoRA, the adapter is merged into its weights).
    * ``train_rows``: ``{"prompt", "completion"}`` dicts, completion = ``" " + answer`` (see
      :func:`sft_rows`). All rows are used (``train_cfg.max_examples`` is applied where the rows are
      built); rows longer than ``max_length`` tokens are dropped with a warning. The loss is on the
      completion (+ EOS) only.
    * ``sequential``: keep the row order (curriculum); otherwise rows are shuffled (seeded).
    * ``out_dir``: where the plain safetensors folder + tokenizer goes (``None``: not saved). Only the
      main process writes it when launched with ``accelerate launch``. Checkpoints and logs of the
      trainer go to ``scratch_dir`` (a temporary folder by default), never to ``out_dir``.
    * ``checkpoint_dir``: makes the training resumable. Every ``train_cfg.checkpoint_minutes`` a
      checkpoint is saved there (the newest one kept), and a call with the same model reference, rows
      and settings continues from the newest complete one (:func:`resume_point`). The caller removes
      the folder once the output is safely in place. Needs a model reference and one process.
    * ``trainer_cls`` / ``trainer_kwargs``: see :func:`make_trainer` (the kwargs are part of what a
      resumed training must match).
    """
    from .config import without_operational

    t0 = time.perf_counter()
    precision = resolve_precision(train_cfg)
    data_hash = rows_sha256(train_rows)
    resume_from = None
    if checkpoint_dir is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        log.warning("training checkpoints are off under a multi-process launch")
        checkpoint_dir = None
    if checkpoint_dir is not None and train_cfg.checkpoint_minutes > 0:
        if not isinstance(model, (str, os.PathLike)):
            raise ValueError("a resumable training (checkpoint_dir) needs a model reference, not a model object")
        from .models import resolve_model

        path = resolve_model(str(model))
        stamp = {"model": path, "model_files": _model_signature(path), "rows_sha256": data_hash,
                 "sequential": sequential, "precision": precision,
                 "train": without_operational(train_cfg.model_dump(mode="json"))}
        if trainer_kwargs:
            stamp["trainer_kwargs"] = json.loads(json.dumps(trainer_kwargs, default=str, sort_keys=True))
        resume_from = resume_point(Path(checkpoint_dir), stamp)
        scratch_dir = checkpoint_dir
        callbacks = [*callbacks, _timed_checkpoints(train_cfg.checkpoint_minutes)]
        if resume_from is not None and progress:
            print(f"[memmcl] resuming the training from {resume_from}", file=sys.stderr, flush=True)
    with contextlib.ExitStack() as stack:
        if scratch_dir is None:
            scratch_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="memmcl-sft-",
                                                                          ignore_cleanup_errors=True))
        scratch = Path(scratch_dir)
        stack.enter_context(_progress_bars(progress))
        trainer, dropped = make_trainer(model, tokenizer, train_rows, train_cfg, scratch,
                                        sequential=sequential, progress=progress, callbacks=callbacks,
                                        trainer_cls=trainer_cls, trainer_kwargs=trainer_kwargs)
        tokenizer = trainer.processing_class
        out = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        trained = trainer.model
        if train_cfg.method == "lora":
            trained = trained.merge_and_unload()
        trained.eval()
        trained.config.use_cache = True
        losses = [[int(h["step"]), float(h["loss"])] for h in trainer.state.log_history if "loss" in h]
        device = str(next(trained.parameters()).device)
        if out_dir is not None:
            if trainer.is_world_process_zero():
                save_plain_model(trained, tokenizer, out_dir, train_cfg.save_dtype)
            trainer.accelerator.wait_for_everyone()
        metrics = out.metrics
        return SFTResult(
            num_examples=len(train_rows) - dropped,
            dropped_too_long=dropped,
            steps=int(trainer.state.global_step),
            epochs=float(trainer.state.epoch or 0.0),
            train_loss=float(out.training_loss),
            train_runtime_s=float(metrics.get("train_runtime", 0.0)),
            examples_per_s=float(metrics.get("train_samples_per_second", 0.0)),
            wall_s=time.perf_counter() - t0,
            method=train_cfg.method,
            precision=precision,
            device=device,
            data_sha256=data_hash,
            loss_history=losses,
            out_dir=str(out_dir) if out_dir is not None else None,
            resumed_from_step=_checkpoint_step(resume_from) if resume_from else None,
            model=trained,
            tokenizer=tokenizer,
        )


# ----------------------------------------------------------------------------------- the experts


def expert_folder(cfg: RunConfig, task: str) -> Path:
    return cfg.experts_dir / task.removeprefix("sentiment_")


def is_complete(folder: Path) -> bool:
    return (Path(folder) / MARKER).is_file() and (Path(folder) / "config.json").is_file()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a folder with our own pid cannot be in use by a live training of ours
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _clean_stale_tmp(experts_dir: Path, task: str) -> list[Path]:
    """Remove ``.<task>.tmp-<pid>`` folders left by killed runs (not those of a live process)."""
    removed = []
    for tmp in experts_dir.glob(f".{task}{_TMP_INFIX}*"):
        pid_s = tmp.name.rsplit(_TMP_INFIX, 1)[-1]
        if pid_s.isdigit() and _pid_alive(int(pid_s)):
            log.warning("%s belongs to live process %s; leaving it", tmp, pid_s)
            continue
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(tmp)
    return removed


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _say(progress: bool, msg: str) -> None:
    log.info(msg)
    if progress:
        print(f"[memmcl experts] {msg}", file=sys.stderr, flush=True)


def _dev_evaluator(cfg: RunConfig, spec: TaskSpec):
    from .evaluation import Evaluator

    return Evaluator([spec], data=cfg.data, split=DEV_SPLIT, limit=cfg.experts.dev_limit, seed=cfg.seed,
                     num_demos=cfg.experts.train.num_demos)


def _dev_settings(cfg: RunConfig, base_path: str) -> dict[str, Any]:
    return {"base_model": cfg.base_model, "base_model_path": base_path, "data": cfg.data, "split": DEV_SPLIT,
            "limit": cfg.experts.dev_limit, "seed": cfg.seed, "num_demos": cfg.experts.train.num_demos}


class BaseScores:
    """The base model's dev scores, computed once per task and cached in ``base_dev_scores.json``."""

    def __init__(self, cfg: RunConfig, base_path: str, progress: bool = True):
        from .io import read_json

        self.cfg, self.base_path, self.progress = cfg, base_path, progress
        self.path = cfg.experts_dir / BASE_SCORES_FILE
        self.settings = _dev_settings(cfg, base_path)
        self.scores: dict[str, dict[str, float]] = {}
        self._model = None
        if self.path.is_file():
            try:
                cached = read_json(self.path)
            except (OSError, ValueError):
                cached = {}
            if cached.get("settings") == self.settings:
                self.scores = dict(cached.get("scores", {}))

    def get(self, spec: TaskSpec) -> dict[str, float]:
        from .io import locked_update
        from .models import load_model_and_tokenizer

        if spec.name not in self.scores:
            if self._model is None:
                self._model = load_model_and_tokenizer(self.base_path)
            ev = _dev_evaluator(self.cfg, spec)
            t0 = time.perf_counter()
            self.scores[spec.name] = ev.evaluate(ev.wrap(*self._model))[spec.name]
            _say(self.progress, f"{spec.name}: base model dev score {self.scores[spec.name]['score']:.3f} "
                                f"({time.perf_counter() - t0:.0f} s)")
            if _is_main_process():  # merged under a lock: expert lanes side by side each add their tasks
                def add(data, name=spec.name):
                    if data.get("settings") != self.settings:
                        data.clear()
                        data["settings"] = self.settings
                    data.setdefault("scores", {})[name] = self.scores[name]

                locked_update(self.path, add, {"settings": self.settings, "scores": {}})
        return self.scores[spec.name]

    def release(self) -> None:
        self._model = None


@dataclass
class ExpertResult:
    task: str
    folder: Path
    skipped: bool
    record: dict[str, Any]

    def row(self) -> dict[str, Any]:
        r = self.record
        dev = r.get("dev", {})
        return {"task": self.task, "examples": r.get("num_examples"), "steps": r.get("steps"),
                "ex/s": r.get("examples_per_s"), "dev before": (dev.get("base") or {}).get("score"),
                "dev after": (dev.get("expert") or {}).get("score"), "folder": str(self.folder),
                "skipped": self.skipped}


def train_expert(cfg: RunConfig, task: str, *, base_path: str | None = None,
                 base_scores: Callable[[TaskSpec], dict] | None = None, progress: bool = True) -> ExpertResult:
    """Train (or skip, when complete) the expert of one task. A pure function of (cfg, task): the folder
    it writes depends on nothing else, so experts can be trained in parallel, one per device."""
    from .io import package_versions, read_json, replace_dir, write_json
    from .models import resolve_model

    spec = get_task(task)
    folder = expert_folder(cfg, spec.name)
    if is_complete(folder):
        record = read_json(folder / MARKER)
        if changed := changed_settings(record.get("config"), cfg.experts):
            log.warning("%s was trained with a different experts config (differs in: %s); delete it to retrain",
                        folder, ", ".join(changed))
        _say(progress, f"{spec.name}: complete expert at {folder}, skipped")
        return ExpertResult(spec.name, folder, True, record)

    t0 = time.perf_counter()
    base_path = base_path or resolve_model(cfg.base_model)
    train_cfg = cfg.experts.train
    rows = task_train_rows(spec, cfg.data, train_cfg)
    main = _is_main_process()
    cfg.experts_dir.mkdir(parents=True, exist_ok=True)
    if main:
        for stale in _clean_stale_tmp(cfg.experts_dir, spec.name):
            _say(progress, f"{spec.name}: removed {stale.name} left by an interrupted run")
        if folder.exists():  # not ours (ours are renamed in complete): replace it
            log.warning("%s exists without %s; it is replaced", folder, MARKER)
    base = base_scores(spec) if (base_scores and main) else None

    tmp = cfg.experts_dir / f".{spec.name}{_TMP_INFIX}{os.getpid()}"
    ckpt = checkpoint_beside(folder)  # survives a kill, unlike tmp: the training resumes from it
    _say(progress, f"{spec.name}: training on {len(rows)} examples ({train_cfg.method}, "
                   f"lr {train_cfg.learning_rate:g}, batch {train_cfg.batch_size})")
    try:
        res = sft_train(base_path, None, rows, train_cfg, tmp, sequential=False, progress=progress,
                        checkpoint_dir=ckpt)
        record: dict[str, Any] = {
            "task": spec.name,
            "lm_eval_task": spec.lm_eval_name,
            "base_model": cfg.base_model,
            "base_model_path": base_path,
            "data": cfg.data,
            "config": cfg.experts.model_dump(mode="json"),
            "num_examples": res.num_examples,
            "dropped_too_long": res.dropped_too_long,
            "num_demos": train_cfg.num_demos,
            "data_sha256": res.data_sha256,
            "steps": res.steps,
            "epochs": res.epochs,
            "train_loss": res.train_loss,
            "loss_history": res.loss_history,
            "train_runtime_s": res.train_runtime_s,
            "resumed_from_step": res.resumed_from_step,
            "examples_per_s": res.examples_per_s,
            "method": res.method,
            "precision": res.precision,
            "device": res.device,
            "save_dtype": train_cfg.save_dtype,
        }
        if main:
            ev = _dev_evaluator(cfg, spec)
            te = time.perf_counter()
            expert_dev = ev.evaluate(ev.wrap(res.model, res.tokenizer))[spec.name]
            record["dev"] = {**_dev_settings(cfg, base_path), "expert": expert_dev, "base": base,
                             "eval_s": time.perf_counter() - te}
            record["wall_s"] = time.perf_counter() - t0
            record["versions"] = package_versions()
            record["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            write_json(tmp / MARKER, record)
            if is_complete(folder):  # another process finished first: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
                return ExpertResult(spec.name, folder, True, read_json(folder / MARKER))
            replace_dir(tmp, folder)
            shutil.rmtree(ckpt, ignore_errors=True)
        before = f"{base['score']:.3f}" if base else "n/a"
        after = f"{record['dev']['expert']['score']:.3f}" if "dev" in record else "n/a"
        _say(progress, f"{spec.name}: {res.num_examples} examples, {res.steps} steps, "
                       f"{res.examples_per_s:.2f} ex/s, loss {res.train_loss:.3f}, dev {spec.metric} "
                       f"{before} -> {after}, {time.perf_counter() - t0:.0f} s -> {folder}")
        return ExpertResult(spec.name, folder, False, record)
    except BaseException:  # Ctrl-C included: never leave a half folder behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def train_experts(cfg: RunConfig, progress: bool = True, tasks: Sequence[str] | None = None) -> list[ExpertResult]:
    """One expert per task of ``cfg.expert_tasks()`` (or ``tasks``, a subset), from ``cfg.base_model``."""
    from .models import resolve_model

    names = [t.removeprefix("sentiment_") for t in (tasks or cfg.expert_tasks())]
    for n in names:
        get_task(n)  # unknown names fail here, before any work
    base_path = resolve_model(cfg.base_model)  # fails clearly (ModelNotFoundError) before any training
    base = BaseScores(cfg, base_path, progress=progress)
    results = []
    for name in names:
        results.append(train_expert(cfg, name, base_path=base_path, base_scores=base.get, progress=progress))
    base.release()
    return results


def format_results(results: Sequence[ExpertResult]) -> str:
    """The ``memmcl experts`` table."""
    def num(v, fmt):
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    lines = ["| task | examples | steps | ex/s | dev before | dev after | folder |", "|---|---|---|---|---|---|---|"]
    for r in results:
        row = r.row()
        note = " (existing)" if r.skipped else ""
        lines.append(f"| {row['task']} | {num(row['examples'], 'd')} | {num(row['steps'], 'd')} | "
                     f"{num(row['ex/s'], '.2f')} | {num(row['dev before'], '.3f')} | "
                     f"{num(row['dev after'], '.3f')} | {row['folder']}{note} |")
    return "\n".join(lines)
