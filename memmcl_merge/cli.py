"""The ``memmcl`` command line. Heavy imports happen inside each command, so ``--help`` is instant."""

from __future__ import annotations

import sys
from pathlib import Path

import click


class MemmclError(click.ClickException):
    """An error shown to the user as one clear line, without a traceback."""


def _fail_cleanly(fn):
    """Turn the project's own errors (bad config, bad data, missing model) into one-line messages."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (KeyError, ValueError, FileNotFoundError, RuntimeError) as exc:
            if isinstance(exc, click.ClickException):
                raise
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise MemmclError(f"{type(exc).__name__}: {msg}") from exc

    return wrapper


@click.group()
@click.version_option(package_name="memmcl-merge")
def main() -> None:
    """MEM-MCL: build one sentiment LLM out of many task experts (mergekit + TRL + lm-eval)."""


# -- model ---------------------------------------------------------------------------------------
@main.group()
def model() -> None:
    """Base model references (local folders, hub ids, short names)."""


@model.command("path")
@click.argument("ref")
@_fail_cleanly
def model_path(ref: str) -> None:
    """Print the folder (or hub id) REF resolves to; converts the embedded SmolLM2 once."""
    from .models import resolve_model

    click.echo(resolve_model(ref))


# -- tasks ---------------------------------------------------------------------------------------
@main.group()
def tasks() -> None:
    """The sentiment task registry and its lm-eval YAML folder."""


@tasks.command("list")
@click.option("--data", default=None, help="Data source for measured meta-data (default: embedded corpus).")
@_fail_cleanly
def tasks_list(data: str | None) -> None:
    """Each task with its group, type, metric and meta-data measured on its train split."""
    from .data import load_docs
    from .tasks import TASKS, TaskMeta

    click.echo(f"{'lm-eval task':28} {'group':5} {'type':22} {'metric':9} {'classes':>7} "
               f"{'words':>6} {'H(bits)':>7}")
    for spec in TASKS.values():
        meta = TaskMeta.measure(spec, load_docs(spec, "train", data))
        click.echo(f"{spec.lm_eval_name:28} {spec.group:5} {spec.type:22} {spec.metric:9} "
                   f"{meta.num_classes:7d} {meta.mean_input_words:6.1f} {meta.label_entropy:7.2f}")


@tasks.command("write-yaml")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default=None, required=False)
def tasks_write_yaml(folder: Path | None) -> None:
    """Regenerate the lm-eval task YAMLs (default: the installed evals folder)."""
    from .lm_tasks import evals_dir, write_eval_folder

    for path in write_eval_folder(folder or evals_dir()):
        click.echo(path)


# -- data ----------------------------------------------------------------------------------------
@main.group()
def data() -> None:
    """Data sources: check a folder, write the embedded corpus."""


@data.command("check")
@click.argument("source")
@click.option("--tasks", "task_names", default="all", help="Comma-separated tasks or groups.")
@_fail_cleanly
def data_check(source: str, task_names: str) -> None:
    """Validate every split of SOURCE (a folder, 'hf:<id>' or 'embedded'), naming file, line and reason."""
    from .data import SPLITS, DataError, resolve_source
    from .evaluation import resolve_tasks

    src = resolve_source(source)
    problems = 0
    for spec in resolve_tasks(task_names):
        for split in SPLITS:
            try:
                n = len(src.load(spec, split))
                click.echo(f"ok   {spec.name:16} {split:9} {n:6d} examples")
            except DataError as exc:
                problems += 1
                click.echo(f"FAIL {exc}", err=True)
    if problems:
        raise MemmclError(f"{problems} split(s) failed the check")


@data.command("write-corpus")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True)
def data_write_corpus(out: Path, seed: int) -> None:
    """Write the embedded, generated corpus for all tasks to OUT."""
    from .corpus import write_corpus

    click.echo(write_corpus(out, seed=seed))


# -- eval ----------------------------------------------------------------------------------------
@main.command("eval")
@click.argument("model_ref")
@click.option("--tasks", "task_names", default="all", show_default=True,
              help="Comma-separated tasks (sst2 or sentiment_sst2), groups (SC, ABSA, MAST) or 'all'.")
@click.option("--data", default=None, help="Folder in the <task>/<split>.jsonl layout, 'hf:<id>' or "
              "'embedded' (default: $MEMMCL_DATA, else the embedded corpus).")
@click.option("--split", default="test", show_default=True)
@click.option("--limit", type=int, default=None, help="Score a seeded sample of this many per task, each label its share of the split.")
@click.option("--demos", type=int, default=0, show_default=True, help="In-context demonstrations per prompt.")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the scores as JSON here.")
@_fail_cleanly
def eval_cmd(model_ref, task_names, data, split, limit, demos, batch_size, out) -> None:
    """Score MODEL_REF on the sentiment_* tasks with lm-eval, in-process, and print a table."""
    from .evaluation import evaluate_model, format_table
    from .models import resolve_model

    ref = resolve_model(model_ref)
    res = evaluate_model(ref, task_names, data=data, split=split, limit=limit, num_demos=demos,
                         batch_size=batch_size)
    click.echo(format_table({model_ref: res["scores"]}))
    click.echo(f"\n{len(res['scores'])} tasks in {res['seconds']:.0f} s")
    if out:
        from .io import write_json

        write_json(out, {"model": model_ref, "resolved": ref, "split": split, "limit": limit,
                         "demos": demos, **res})


# -- experts -------------------------------------------------------------------------------------
@main.command("experts")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tasks", "task_names", default=None,
              help="Comma-separated subset of the config's expert tasks (default: all of them).")
@click.option("--quiet", is_flag=True, help="No progress bars or per-expert log lines.")
@_fail_cleanly
def experts_cmd(config: Path, task_names: str | None, quiet: bool) -> None:
    """Fine-tune one expert per task (TRL SFT, LoRA merged back) into <output_dir>/experts/<task>.

    Complete experts are skipped; an interrupted run leaves no half folder and resumes where it stopped.
    """
    from .config import load_config
    from .experts import format_results, train_experts

    cfg = load_config(config)
    tasks = None
    if task_names:
        tasks = [t.strip().removeprefix("sentiment_") for t in task_names.split(",") if t.strip()]
        unknown = [t for t in tasks if t not in cfg.expert_tasks()]
        if unknown:
            raise MemmclError(f"--tasks {','.join(unknown)}: not among the config's expert tasks "
                              f"({', '.join(cfg.expert_tasks())})")
    results = train_experts(cfg, progress=not quiet, tasks=tasks)
    click.echo(format_results(results))


def _load(config: Path):
    from .config import load_config

    return load_config(config)


# -- evolve --------------------------------------------------------------------------------------
@main.command("evolve")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--stage", default="all", show_default=True,
              help="Stage to run: a stage name of the config (stage1, stage2, ...), 1, 2 or 'all'; or one "
                   "search of a stage by its key (stage1/SC), to run a stage's searches side by side.")
@_fail_cleanly
def evolve_cmd(config: Path, stage: str) -> None:
    """CMA-ES evolution of the merge, stage by stage, on weak data; writes mergekit recipes."""
    from .evolve import run_plan

    cfg = _load(config)
    plan = cfg.plan()
    names, keys = [p.stage for p in plan], [p.key for p in plan]
    wanted = None if stage == "all" else [f"stage{stage}" if stage.isdigit() else stage]
    if wanted and wanted[0] not in names + keys:
        raise MemmclError(f"no stage {stage!r} in {config}; stages are {', '.join(dict.fromkeys(names))}, "
                          f"searches {', '.join(keys)}")
    results = run_plan(cfg, stages=wanted)
    for key, r in results.items():
        click.echo(f"{key:20} fitness {r['start_fitness']:.4f} -> {r['best_fitness']:.4f} "
                   f"({r['evaluations']} evals)  recipe {r['recipe']}")


# -- curriculum ----------------------------------------------------------------------------------
@main.group()
def curriculum() -> None:
    """Meta-data driven curriculum: see the plan, or train it."""


@curriculum.command("plan")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@_fail_cleanly
def curriculum_plan(config: Path) -> None:
    """Print the task order and every part of each task's difficulty score."""
    from .curriculum import format_plan, plan_curriculum

    cfg = _load(config)
    click.echo(format_plan(plan_curriculum(cfg), cfg.curriculum.weights.model_dump()))


@curriculum.command("train")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@_fail_cleanly
def curriculum_train(config: Path) -> None:
    """Curriculum SFT of the winning merge (easy -> hard), LoRA merged back."""
    from .curriculum import run_curriculum

    rec = run_curriculum(_load(config))
    click.echo(f"order: {' -> '.join(rec['order'])}")


@main.command("blend")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@_fail_cleanly
def blend_cmd(config: Path) -> None:
    """Blend the curriculum model back toward the merge (merge + alpha x difference), alpha picked on
    the weak sets; writes recipes/blend.yml."""
    from .blend import run_blend

    rec = run_blend(_load(config))
    click.echo(f"alpha {rec['alpha']:g} (weak-set fitness {rec['fitness']:.4f})  recipe {rec['recipe']}")


# -- the whole pipeline --------------------------------------------------------------------------
@main.command("run")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--until", default=None, help="Stop after this step (experts, evolve, curriculum, blend, evaluate, report).")
@_fail_cleanly
def run_cmd(config: Path, until: str | None) -> None:
    """experts -> stage 1 -> stage 2 -> curriculum -> [blend] -> evaluation -> report; resumes where it
    stopped."""
    import time

    from .pipeline import run_pipeline

    cfg = _load(config)  # validated in full before any work starts
    t0 = time.perf_counter()
    out = run_pipeline(cfg, config_path=config, until=until)
    click.echo(f"\ndone in {(time.perf_counter() - t0) / 60:.1f} min")
    click.echo(f"report:      {out['report']}")
    click.echo(f"final model: {out['final_model']}")


def run() -> None:  # pragma: no cover - console entry for `python -m memmcl_merge`
    main(prog_name="memmcl")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
