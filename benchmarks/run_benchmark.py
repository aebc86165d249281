"""Benchmarks on real data (not tests): every figure in the README and RESULTS.md comes from here.

    python benchmarks/run_benchmark.py zero_shot [--data ../shared/data] [--limit N]

Steps write ``benchmarks/results/<step>.json`` (atomically); each system's scores are saved as soon as
they are measured and are not recomputed when the script is run again (delete the file to redo).
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path
from typing import ClassVar

from memmcl_merge.io import locked_update

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DEFAULT_DATA = ROOT.parent / "shared" / "data"


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "python": sys.version.split()[0],
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


class Results:
    """One JSON file per step: {"meta": ..., "systems": {name: {...}}}, saved after every system.
    Each save re-reads the file under a lock and changes only its own entry, so two steps writing
    one file (a long training beside a calibration, a soup) never drop each other's rows."""

    EMPTY: ClassVar[dict] = {"meta": {}, "systems": {}}  # copied, never changed

    def __init__(self, step: str):
        from memmcl_merge.io import read_json

        self.path = RESULTS / f"{step}.json"
        self.data = read_json(self.path) if self.path.is_file() else copy.deepcopy(self.EMPTY)

    def has(self, system: str) -> bool:
        return system in self.data["systems"]

    def _update(self, change) -> None:
        self.data = locked_update(self.path, change, self.EMPTY)

    def put(self, system: str, value: dict, stamp: bool = True) -> None:
        """Save one row; a row measured here (``stamp``) also records the package versions it was
        measured with, unless it names its own. ``adopt`` copies rows as they are (``stamp=False``)."""
        here = self.check_dtype() if stamp else None
        if stamp and "versions" not in value:
            from memmcl_merge.io import package_versions

            value = {**value, "versions": package_versions()}

        def change(data):
            if here and not data["systems"]:
                data["meta"].setdefault("dtype", here)  # a new file takes its first measured row's dtype
            data["systems"][system] = value

        self._update(change)

    def check_dtype(self) -> str:
        """Rows measured here must be scored in the dtype the file's rows were (meta ``dtype``): a CPU
        without native bf16 matmuls scores in float32 (``eval_dtype``), and its scores and search
        fitness differ from bf16 ones (RESULTS.md session 50). Scripts call it before they train.
        Returns this machine's scoring dtype."""
        recorded, here = self.data["meta"].get("dtype"), str(eval_dtype())
        if recorded and recorded != here:
            raise SystemExit(f"{self.path}: its rows were scored in {recorded}, this machine scores in {here} (bf16 "
                             "only where the CPU or GPU computes it natively); a row measured here would not compare "
                             "with them: pass another --results file, run on such a machine, or set "
                             f"MEMMCL_AUTO_DTYPE={recorded.removeprefix('torch.')}"
                             + (" (emulated bf16 is ~15x slower)" if recorded == "torch.bfloat16" else ""))
        return here

    def meta(self, append: dict | None = None, **kw) -> None:
        """Set the ``kw`` fields of meta, and add each ``append`` item to its list ``meta[key]`` as the
        file holds it at save time (a command line, a config change), so two steps started together
        both keep theirs. One locked write."""

        def change(data):
            data["meta"].update(kw)
            for key, item in (append or {}).items():
                data["meta"].setdefault(key, []).append(item)

        self._update(change)


def console_script(name: str) -> str:
    """A console script of this environment: beside the interpreter (a virtual environment), else
    the one on PATH (packages installed with ``pip install --target``, as on the GPU machine)."""
    import shutil

    here = Path(sys.executable).parent / name
    return str(here) if here.is_file() else (shutil.which(name) or str(here))


# Rows per scoring batch: 16 suits 2 CPU cores; a GPU wants more (--batch-size).
SCORE_BATCH_SIZE = 16


def eval_dtype():
    """Scoring dtype of the systems, experts and evolve steps: bf16 where the machine computes it
    natively (the dtype every model here is saved in; ~1.7x faster here), else float32; the environment
    variable ``MEMMCL_AUTO_DTYPE`` fixes it (``live_dtype``)."""
    from memmcl_merge.evolve import live_dtype

    return live_dtype("auto")


def score_model(ref: str, data: str, split: str, limit: int | None, tasks="all", num_demos: int = 0,
                batch_size: int | None = None, dtype=None) -> dict:
    """``dtype`` (default ``eval_dtype()``, every results file's) scores in another, e.g. dtype_check.py."""
    from memmcl_merge.evaluation import evaluate_model, group_means

    t0 = time.perf_counter()
    res = evaluate_model(ref, tasks, data=data, split=split, limit=limit, num_demos=num_demos,
                         batch_size=batch_size or SCORE_BATCH_SIZE, dtype=dtype or eval_dtype())
    return {"scores": res["scores"], "means": group_means(res["scores"]), "eval_seconds": res["seconds"],
            "wall_seconds": time.perf_counter() - t0}


def step_zero_shot(args) -> None:
    """SmolLM2-135M-Instruct zero-shot on all 12 tasks (issue 3)."""
    from memmcl_merge.evaluation import format_table
    from memmcl_merge.models import resolve_model

    res = Results("zero_shot")
    res.meta(machine=machine(), data=str(args.data), split=args.split, limit=args.limit,
             command=" ".join(["python", *sys.argv]))
    ref = resolve_model(args.model)
    for task in _tasks(args):
        if res.has(task):
            continue
        out = score_model(ref, str(args.data), args.split, args.limit, tasks=task)
        res.put(task, {"scores": out["scores"][task], "seconds": out["eval_seconds"]})
        print(f"{task}: {out['scores'][task]['score']:.3f} in {out['eval_seconds']:.0f} s", flush=True)
    table = {"zero-shot": {t: v["scores"] for t, v in res.data["systems"].items()}}
    print(format_table(table))


def _tasks(args) -> list[str]:
    from memmcl_merge.evaluation import resolve_tasks

    return [t.name for t in resolve_tasks(args.tasks)]


BENCH_CONFIG = HERE / "bench.yml"


def bench_config(args):
    """The run YAML of the benchmark (real data, budgets sized for 2 CPU cores; see bench.yml)."""
    from memmcl_merge.config import load_config

    cfg = load_config(args.config)
    return cfg.model_copy(update={"data": str(args.data.resolve())})


def run_config(args):
    """The benchmark's run config, pointed at ``--run`` (another evolution run's folder) when given."""
    cfg = bench_config(args)
    if args.run is None:
        return cfg
    if not (args.run / "experts").is_dir():
        raise SystemExit(f"--run {args.run}: not an evolution run (no experts folder)")
    return cfg.model_copy(update={"output_dir": args.run.resolve()})


def with_run_weak_sets(cfg):
    """``cfg`` with the weak-set settings its run was searched on (``<output_dir>/weak/settings.json``):
    a step scored on the run's weak sets sees the fitness its searches saw."""
    from memmcl_merge.io import read_json

    settings = cfg.output_dir / "weak" / "settings.json"
    if not settings.is_file():
        raise SystemExit(f"{cfg.output_dir}: no weak sets (weak/settings.json); run its evolution first")
    weak = cfg.evolve.weak.model_validate(read_json(settings))
    return cfg.model_copy(update={"evolve": cfg.evolve.model_copy(update={"weak": weak})})


def step_experts(args) -> None:
    """Train one expert per task on its train split, then the experts x tasks matrix (issue 4)."""
    from memmcl_merge.experts import train_experts
    from memmcl_merge.models import resolve_model

    cfg = bench_config(args)
    res = Results("experts")
    res.meta(machine=machine(), data=str(args.data), split=args.split, limit=args.limit,
             train=cfg.experts.train.model_dump(mode="json"), command=" ".join(["python", *sys.argv]))
    t0 = time.perf_counter()
    trained = train_experts(cfg)
    res.meta(train_seconds_this_call=time.perf_counter() - t0,
             training={r.task: {k: r.record.get(k) for k in ("num_examples", "steps", "examples_per_s",
                                                             "train_loss", "wall_s")} for r in trained})
    models = {"base": resolve_model(cfg.base_model), **{f"expert:{r.task}": str(r.folder) for r in trained}}
    for name, ref in models.items():
        if res.has(name):
            continue
        res.put(name, score_model(ref, str(args.data), args.split, args.limit, tasks=list(cfg.tasks)))
        print(f"{name}: mean {res.data['systems'][name]['means']['all']:.3f}", flush=True)


def step_evolve(args) -> None:
    """Stage 1 + stage 2 on the benchmark experts; seconds per candidate against the user's path
    (mergekit-yaml + the lm_eval command); the stage-2 model on the test split (issue 6)."""
    import shutil

    from memmcl_merge.evolve import final_model_dir, run_plan

    cfg = bench_config(args)
    res = Results("evolve")
    res.check_dtype()
    res.meta(machine=machine(), data=str(args.data), split=args.split, limit=args.limit, dtype=str(eval_dtype()),
             evolve=cfg.evolve.model_dump(mode="json"), command=" ".join(["python", *sys.argv]))
    if not res.has("searches"):
        t0 = time.perf_counter()
        searches = run_plan(cfg)
        res.put("searches", {"seconds_this_call": time.perf_counter() - t0,
                             **{k: {f: v[f] for f in ("start_fitness", "best_fitness", "evaluations", "seconds",
                                                       "best_params", "best_scores", "recipe")}
                                for k, v in searches.items()}})
        for k, v in searches.items():
            png = Path(v["journal"]).parent / "fitness.png"
            if png.is_file():
                shutil.copyfile(png, RESULTS / f"fitness_{k.replace('/', '_')}.png")
    if not res.has("speed"):
        res.put("speed", candidate_speed(cfg))
    if not res.has("stage2"):
        res.put("stage2", score_model(str(final_model_dir(cfg)), str(args.data), args.split, args.limit,
                                      tasks=list(cfg.tasks)))


def candidate_speed(cfg, repeats: int = 3) -> dict:
    """One stage-1 candidate, both ways, on the same model and weak set: ours (merge in place +
    in-process lm-eval) against mergekit-yaml + the lm_eval command as subprocesses."""
    import json
    import subprocess
    import tempfile

    from memmcl_merge.evolve import SearchRunner, build_weak_sets, stage_dir
    from memmcl_merge.lm_tasks import evals_dir
    from memmcl_merge.models import resolve_model
    from memmcl_merge.recipes import write_recipe

    plan = cfg.plan()[0]
    base = resolve_model(cfg.base_model)
    weak = build_weak_sets(cfg, plan.tasks)
    best = json.loads((stage_dir(cfg, plan.key) / "memmcl_search.json").read_text())["best_params"]
    t0 = time.perf_counter()
    runner = SearchRunner(cfg, plan, base, weak)
    runner(best)  # the search's first candidate: builds the magnitude rankings and warms lm-eval up
    setup = time.perf_counter() - t0
    merges, evals = [], []
    for _ in range(repeats):
        out = runner(best)
        merges.append(out["seconds_merge"])
        evals.append(out["seconds_eval"])
    ours = (sum(merges) + sum(evals)) / repeats
    # the same candidates scored by lm-eval's HFLM as is: what the answer window is worth
    window_lm, runner.lm = runner.lm, runner.evaluator.wrap(runner.model, runner.tok, answer_window=False)
    runner(best)
    plain_evals = [runner(best)["seconds_eval"] for _ in range(repeats)]
    runner.lm = window_lm
    with tempfile.TemporaryDirectory() as tmp:
        recipe = write_recipe(Path(tmp) / "cand.yml", base, {m: str(p) for m, p in runner.member_paths.items()},
                              runner.full_params(best), dtype="float32", out_dtype="bfloat16")
        t0 = time.perf_counter()
        subprocess.run([console_script("mergekit-yaml"), str(recipe), f"{tmp}/out", "--copy-tokenizer"],
                       check=True, capture_output=True)
        t_merge = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run([console_script("lm_eval"), "--model", "hf", "--model_args",
                        f"pretrained={tmp}/out,dtype={str(runner.model.dtype).removeprefix('torch.')}",
                        "--include_path", str(evals_dir()),
                        "--tasks", ",".join(f"sentiment_{t}" for t in plan.tasks),
                        "--device", str(runner.model.device),  # the device ours scores on
                        "--batch_size", str(cfg.evolve.batch_size),
                        "--metadata", json.dumps({"data": str(weak), "split": "weak"})],
                       check=True, capture_output=True)
        t_eval = time.perf_counter() - t0
    theirs = t_merge + t_eval
    return {"search": plan.key, "dtype": str(runner.model.dtype), "weak_examples": sum(1 for t in plan.tasks for _ in
                                                    open(weak / t / "weak.jsonl", encoding="utf-8")),
            "ours": {"setup_once_s_incl_first_candidate": setup, "merge_s": sum(merges) / repeats, "eval_s": sum(evals) / repeats,
                     "per_candidate_s": ours,
                     "eval_s_without_answer_window": sum(plain_evals) / repeats},
            "mergekit_yaml_plus_lm_eval_cli": {"merge_s": t_merge, "eval_s": t_eval, "per_candidate_s": theirs},
            "candidates_per_hour_ratio": theirs / ours}


def step_systems(args) -> None:
    """Every system of issue 8 on the same test subset. Missing experts are trained, the MEM-MCL
    stages evolved (finished searches are reused), everything else is built here."""
    from memmcl_merge.curriculum import run_curriculum
    from memmcl_merge.evolve import final_model_dir, run_plan, stage_dir
    from memmcl_merge.experts import train_experts
    from memmcl_merge.io import read_json
    from memmcl_merge.models import resolve_model

    cfg = bench_config(args)
    res = Results(args.results)
    command = " ".join(["python", *sys.argv])
    res.check_dtype()  # before the meta below records this machine's dtype over the file's
    first = res.data["meta"].get("config") or cfg.model_dump(mode="json")
    # the series' config stays the one it began with; a later call's differences are noted
    append = {"commands": command}
    if changed := _config_changes(first, cfg):
        append["later_configs"] = {"command": command, "changed": changed}
    res.meta(machine=machine(), data=str(args.data), split=args.split, limit=args.limit, dtype=str(eval_dtype()),
             config=first, append=append)
    out = cfg.output_dir
    base = resolve_model(cfg.base_model)
    experts = cfg.output_dir / "experts"
    if any(_selected(args, f"expert:{t} (own task)") and not res.has(f"expert:{t} (own task)") for t in cfg.tasks):
        train_experts(cfg)  # finished experts are kept, so this trains only what is missing
    # Each expert on its own task only: the bar is "keep 95% of each expert's own score"; the full
    # experts x tasks matrix is the `experts` step.
    for task in cfg.tasks:
        name = f"expert:{task} (own task)"
        if res.has(name) or not _selected(args, name):
            continue
        res.put(name, {"model": str(experts / task),
                       **score_model(str(experts / task), str(args.data), args.split, args.limit, tasks=[task])})
        print(f"{name}: {res.data['systems'][name]['scores'][task]['score']:.3f}", flush=True)
    builders = {
        "base zero-shot": lambda: base,
        "base 2-shot": lambda: base,
        **{f"baseline {name}": (lambda name=name: mergekit_baseline(cfg, name))
           for name in ("task_arithmetic", "ties", "dare_ties")},
        "single-stage CMA-ES": lambda: single_stage(cfg),
        "multitask SFT": lambda: multitask_sft(cfg),
        # the control for a curriculum on proportional rows: the same rows for the multitask SFT
        "multitask SFT, proportional training rows": lambda: multitask_sft(cfg, "proportional"),
        # the comparator's spread over training seeds, beside MEM-MCL's over weak-set draws
        **{f"multitask SFT, training seed {s}": (lambda s=s: multitask_sft(cfg, seed=s)) for s in (1, 2)},
        # the comparator of MEM-MCL from experts trained for 3 epochs on their rows (evolve_variant.py)
        "multitask SFT, 3 epochs": lambda: multitask_sft(cfg, epochs=3),
        # ... and its own spread over training seeds
        **{f"multitask SFT, 3 epochs, training seed {s}": (lambda s=s: multitask_sft(cfg, seed=s, epochs=3))
           for s in (1, 2, 3)},
        # the comparator of a curriculum with teacher_rows 128 at the same steps: the same 128 unseen
        # train rows per task answered by the own experts, 1.5 epochs over the doubled rows
        "multitask SFT, 128 teacher rows per task, 1.5 epochs": lambda: multitask_sft(cfg, epochs=1.5, teacher_rows=128),
        "MEM-MCL stage 2": lambda: _then(run_plan(cfg), final_model_dir(cfg)),
        "MEM-MCL stage 2 + curriculum": lambda: _then(run_curriculum(cfg), out / "final"),
    }
    evolved = Results("evolve").data
    key = cfg.plan()[-1].key
    done = stage_dir(cfg, key) / "result.json"
    # evolve.json's stage-2 score is this run's only if its search is the one on disk (a later series
    # on freshly trained experts evolves another model); a search's wall seconds identify it
    same_search = done.is_file() and read_json(done)["seconds"] == evolved["systems"].get("searches", {}).get(key, {}).get("seconds")
    if (same_search and not res.has("MEM-MCL stage 2") and _selected(args, "MEM-MCL stage 2") and "stage2" in evolved["systems"]
            and all(evolved["meta"].get(k) == res.data["meta"].get(k) for k in ("data", "split", "limit", "dtype"))):
        # the evolve step already scored the stage-2 model on this subset: same model, same numbers
        res.put("MEM-MCL stage 2", {"model": str(final_model_dir(cfg)), "build_seconds": 0.0,
                                    "from": "evolve.json", **evolved["systems"]["stage2"]})
    for name, build in builders.items():
        if res.has(name) or not _selected(args, name) or (name in OPT_IN and not args.only):
            continue
        t0 = time.perf_counter()
        ref = build()
        built = time.perf_counter() - t0
        demos = 2 if "2-shot" in name else 0
        scored = score_model(ref, str(args.data), args.split, args.limit, tasks=list(cfg.tasks), num_demos=demos)
        res.put(name, {"model": ref, "build_seconds": built, **scored})
        print(f"{name}: mean {scored['means']['all']:.3f} (built in {built:.0f} s)", flush=True)
    # finished models from elsewhere, e.g. stage merges; on --tasks only (a probe), else every task
    extra_tasks = list(cfg.tasks) if args.tasks == "all" else _tasks(args)
    for name, folder in _extra_models(args).items():
        if res.has(name):
            continue
        scored = score_model(folder, str(args.data), args.split, args.limit, tasks=extra_tasks)
        res.put(name, {"model": folder, "from": "--extra", **scored})
        print(f"{name}: mean {scored['means']['all']:.3f}", flush=True)


def _config_changes(recorded: dict, cfg) -> list[str]:
    """Settings of ``cfg`` that differ from a recorded run config (JSON), as ``section.field`` one level
    down; settings the record predates count as unchanged at their defaults (``changed_settings``)."""
    from pydantic import BaseModel

    from memmcl_merge.config import changed_settings

    out = []
    for key in changed_settings(recorded, cfg):
        section = getattr(cfg, key, None)
        if isinstance(section, BaseModel) and isinstance(recorded.get(key), dict):
            out += [f"{key}.{f}" for f in changed_settings(recorded[key], section)]
        else:
            out.append(key)
    return out


def _extra_models(args) -> dict[str, str]:
    """``--extra NAME=FOLDER`` items, checked: NAME -> the resolved model folder."""
    out = {}
    for item in args.extra:
        name, sep, folder = item.partition("=")
        if not sep or not (Path(folder) / "config.json").is_file():
            raise SystemExit(f"--extra {item!r}: expected NAME=FOLDER with a model folder (config.json) at FOLDER")
        out[name] = str(Path(folder).resolve())
    return out


def _selected(args, name: str, spec: str | None = None) -> bool:
    """--only 'a,b': run the systems whose name contains one of the comma-separated words (a comma
    followed by a space is part of a word, as in system names); a word that starts with '=' names one
    system exactly ('=multitask SFT' leaves out its variants). ``spec`` reads another option (--against)
    the same way."""
    spec = args.only if spec is None else spec
    words = [w.strip() for w in re.split(r",(?! )", spec) if w.strip()]
    return not spec or any(name == w[1:] if w.startswith("=") else w in name for w in words)


def _selected_runs(rows: dict, args, mem_mcl_only: bool = True) -> list[str]:
    """The MEM-MCL runs of a results file's systems that --only selects (bar, paired); none is an error.
    ``mem_mcl_only=False`` takes any system (paired --against: a stage merge against another)."""
    runs = [n for n in rows if ("MEM-MCL" in n or not mem_mcl_only) and args.only and _selected(args, n)]
    if not runs:
        what = "MEM-MCL run" if mem_mcl_only else "system"
        raise SystemExit(f"--only {args.only!r} selects no {what} of results/{args.results}.json")
    return runs


def _then(_done, path) -> str:
    """Run a step for its side effect (it writes a model folder), then return that folder."""
    return str(path)


def mergekit_baseline(cfg, name: str) -> str:
    """recipes/baselines/<name>.yml with its paths pointed at this run, merged by mergekit-yaml."""
    import subprocess

    from memmcl_merge.evolve import link_base

    link_base(cfg)
    target = cfg.output_dir / "baselines" / name
    if (target / "config.json").is_file():
        return str(target)
    text = (ROOT / "recipes" / "baselines" / f"{name}.yml").read_text().replace("runs/default", str(cfg.output_dir))
    recipe = cfg.output_dir / "baselines" / f"{name}.yml"
    recipe.parent.mkdir(parents=True, exist_ok=True)
    recipe.write_text(text)
    subprocess.run([console_script("mergekit-yaml"), str(recipe), str(target),
                    "--copy-tokenizer", "--random-seed", "0"], check=True)
    return str(target)


def single_stage(cfg) -> str:
    """One CMA-ES search over all experts with the budget of all MEM-MCL searches together: their
    number of evaluations, capped at their search seconds (a stage-1 evaluation scores only its
    group's tasks, so equal counts alone would give the single search about twice the compute)."""
    from memmcl_merge.config import StageConfig
    from memmcl_merge.evolve import member_path, run_plan, stage_dir
    from memmcl_merge.io import read_json

    budget = sum(p.search.max_evals for p in cfg.plan())
    # the seconds of this run's own searches (run_plan first), not of an older series' results file
    run_plan(cfg)
    seconds = sum(read_json(stage_dir(cfg, p.key) / "result.json")["seconds"] for p in cfg.plan())
    search = cfg.evolve.search.model_copy(update={"max_evals": budget, "max_seconds": seconds})
    single = cfg.model_copy(update={"evolve": cfg.evolve.model_copy(update={
        "stages": [StageConfig(name="single", groups={"all": list(cfg.tasks)}, search=search)]})})
    run_plan(single)
    return str(member_path(single, "single/all"))


def multitask_sft(cfg, sampling: str | None = None, seed: int | None = None, epochs: float | None = None,
                  teacher_rows: int = 0) -> str:
    """One LoRA SFT of the base on the union of the experts' training rows (same data, same passes);
    ``sampling`` draws the rows another way than the experts' (the same number per task); ``seed``
    trains on the same rows with another training seed (LoRA init, row order): the comparator's own
    run-to-run spread; ``epochs`` more passes over the same rows (the comparator of experts trained
    longer: same data, more compute); ``teacher_rows`` adds the rows a curriculum with
    ``curriculum.teacher_rows`` trains on (the same unseen train rows, answered by the own experts):
    the comparator of that curriculum, on the same data."""
    import random

    from memmcl_merge.experts import checkpoint_beside, sft_train, task_train_rows
    from memmcl_merge.teacher_rows import teacher_train_rows

    train = cfg.experts.train if sampling is None else cfg.experts.train.model_copy(update={"sampling": sampling})
    if epochs is not None:
        train = train.model_copy(update={"epochs": epochs})
    name = ("multitask" + (f"_{sampling}" if sampling else "") + (f"_seed_{seed}" if seed is not None else "")
            + (f"_epochs_{epochs:g}" if epochs is not None else "") + (f"_teacher_{teacher_rows}" if teacher_rows else ""))
    target = cfg.output_dir / name
    if (target / "config.json").is_file():
        return str(target)
    rows = [r for t in cfg.tasks for r in task_train_rows(t, cfg.data, train)
            + (teacher_train_rows(cfg, t, teacher_rows, train) if teacher_rows else [])]
    random.Random(cfg.seed if seed is None else seed).shuffle(rows)
    if seed is not None:
        train = train.model_copy(update={"seed": seed})
    tmp, ckpt = target.with_name(f".{target.name}.tmp"), checkpoint_beside(target)
    sft_train(cfg.base_model, None, rows, train, tmp, checkpoint_dir=ckpt)  # a killed run resumes
    tmp.replace(target)
    shutil.rmtree(ckpt, ignore_errors=True)
    return str(target)


def step_pipeline(args) -> None:
    """Record a finished `memmcl run` (the README's main job): step times and the report's scores."""
    from memmcl_merge.io import read_json, write_json

    run = args.run.resolve()
    state = read_json(run / "pipeline.json")
    evals = {n: read_json(p)["scores"] for n in ("base", "merged", "final") if (p := run / "eval" / f"{n}.json").is_file()}
    from memmcl_merge.evaluation import group_means

    write_json(RESULTS / f"{args.name}.json", {
        "machine": machine(), "run": str(run), "command": args.command,
        "step_seconds": {k: v["seconds"] for k, v in state["steps"].items()},
        "total_minutes": sum(v["seconds"] for v in state["steps"].values()) / 60,
        "scores": evals, "means": {n: group_means(s) for n, s in evals.items()}})
    print(f"{args.name}: {sum(v['seconds'] for v in state['steps'].values()) / 60:.1f} min")


def step_speed(args) -> None:
    """Seconds per evolution candidate, ours vs mergekit-yaml + lm_eval, on a finished run's first
    search (``--config``; e.g. configs/default.yml after `make demo`)."""
    from memmcl_merge.config import load_config
    from memmcl_merge.io import write_json

    cfg = bench_config(args) if args.config.resolve() == BENCH_CONFIG else load_config(args.config)
    out = candidate_speed(cfg)
    write_json(RESULTS / f"{args.name}.json", {"machine": machine(), "config": str(args.config),
                                              "command": " ".join(["python", *sys.argv]), **out})
    print(f"ours {out['ours']['per_candidate_s']:.1f} s/candidate, mergekit-yaml + lm_eval "
          f"{out['mergekit_yaml_plus_lm_eval_cli']['per_candidate_s']:.1f} s: "
          f"{out['candidates_per_hour_ratio']:.1f}x more candidates per hour")


def step_answer_window(args) -> None:
    """lm-eval's HFLM against our answer-window LM (fast_lm) on the same expert and test rows: the
    log-likelihood of every choice, answers flipped, and seconds (best of two runs each, alternated)."""
    from memmcl_merge.evaluation import Evaluator, choice_loglikelihoods, resolve_tasks
    from memmcl_merge.io import write_json
    from memmcl_merge.models import load_model_and_tokenizer

    cfg = bench_config(args)
    old = Results("systems").data["systems"]
    out = {}
    for task in [t.name for t in resolve_tasks(args.tasks)]:
        model, tok = load_model_and_tokenizer(str(cfg.output_dir / "experts" / task), dtype=eval_dtype())
        ev = Evaluator(resolve_tasks(task), data=str(args.data), split=args.split, limit=args.limit, batch_size=SCORE_BATCH_SIZE)
        if ev.tasks[0].is_generative:
            continue  # generation is HFLM's own path in both
        runs: dict[bool, list] = {False: [], True: []}
        for window in (False, True, False, True):
            lm = ev.wrap(model, tok, answer_window=window)
            t0 = time.perf_counter()
            results, logged = ev.logged_samples(lm)
            runs[window].append((time.perf_counter() - t0, choice_loglikelihoods(logged[task]),
                                 results[f"sentiment_{task}"]["score,none"]))
        (_, plain, s_plain), (_, fast, s_fast) = runs[False][0], runs[True][0]
        pick = lambda ll: max(range(len(ll)), key=ll.__getitem__)
        out[task] = {"expert_own_score_before": old.get(f"expert:{task} (own task)", {}).get("scores", {}).get(task, {}).get("score"),
                     "plain": s_plain, "window": s_fast, "n": len(plain),
                     "max_abs_ll_diff": max(abs(x - y) for p, q in zip(plain, fast) for x, y in zip(p, q)),
                     "answer_flips": sum(pick(p) != pick(q) for p, q in zip(plain, fast)),
                     "plain_s": min(r[0] for r in runs[False]), "window_s": min(r[0] for r in runs[True])}
        print(task, out[task], flush=True)
    write_json(RESULTS / "answer_window_check.json", {"machine": machine(), "command": " ".join(["python", *sys.argv]),
                                                      "tasks": out})


def row_answers(record: dict, tasks, key: str = "pred") -> dict:
    """Per task of a results record: every test row's gold and answer (``key``) label index, as arrays
    for a paired bootstrap (the record keeps them as strings of digits)."""
    import numpy as np

    return {t: (np.array([int(c) for c in record["scores"][t]["gold"]]),
                np.array([int(c) for c in record["scores"][t][key]])) for t in tasks}


def variant_slug(name: str) -> str:
    """The folder name of a controlled run under runs/bench/variants (a rerun of NAME reuses it)."""
    import re

    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def variant_args(doc: str, argv=None, run_option: bool = False, need_overrides: bool = True,
                 extra=None, results: str = "systems") -> argparse.Namespace:
    """The command line of the controlled-run scripts (curriculum_variant.py, evolve_variant.py,
    blend_variant.py); ``extra(parser)`` adds a script's own options."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if run_option:
        ap.add_argument("--run", type=Path, default=None,
                        help="the evolution run to start from (e.g. an evolve_variant.py folder; default: bench.yml's)")
    ap.add_argument("name")
    ap.add_argument("overrides", nargs="+" if need_overrides else "*", help="KEY=VALUE")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--results", default=results, help="the results file, benchmarks/results/<name>.json")
    ap.add_argument("--config", type=Path, default=HERE / "bench.yml")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    if extra is not None:
        extra(ap)
    return ap.parse_args(argv)


def step_label_shares(args) -> None:
    """How often each model of a results file (``--results``; ``--only`` picks systems by name words;
    ``--extra NAME=FOLDER`` adds other model folders) answers each label of the classification tasks
    (``--tasks``), against the gold counts: the label bias a macro-F1 alone does not show. Writes
    results/<results>_label_shares.json, adding to the counts already there (same split and limit),
    so one run per task or system loses nothing."""
    from collections import Counter

    from memmcl_merge.data import load_docs
    from memmcl_merge.evaluation import Evaluator, resolve_tasks
    from memmcl_merge.io import read_json
    from memmcl_merge.models import load_model_and_tokenizer

    specs = [t for t in resolve_tasks(args.tasks) if not t.is_generative]
    systems = {n: r for n, r in Results(args.results).data["systems"].items() if r.get("model") and _selected(args, n)}
    systems.update({name: {"model": folder} for name, folder in _extra_models(args).items()})
    path = RESULTS / f"{args.results}_label_shares.json"

    def check_rows(held):  # counts on other rows would be added up as if they were the same rows
        if held and (held.get("split"), held.get("limit")) != (args.split, args.limit):
            raise SystemExit(f"{path} holds counts on {held.get('split')} limit {held.get('limit')}, not on "
                             f"{args.split} limit {args.limit}: move it away or pass another --results")

    check_rows(read_json(path) if path.is_file() else {})  # before building the evaluator: fail fast
    ev = Evaluator(specs, data=str(args.data), split=args.split, limit=args.limit, batch_size=SCORE_BATCH_SIZE)
    gold = {spec.name: dict(Counter(d["label"] for d in load_docs(spec, args.split, str(args.data), limit=args.limit,
                                                                   sampling=ev.sampling)))
            for spec in specs}
    empty = {"machine": machine(), "commands": [], "split": args.split, "limit": args.limit, "gold": {}, "systems": {}}

    def started(data):  # the command and gold counts go in the file as it is at save time, not a stale copy
        check_rows(data)  # again under the lock: a run on other rows may have started meanwhile
        if "command" in data:  # written before counts were added up
            data["commands"] = [data.pop("command")]
        data.setdefault("commands", []).append(" ".join(["python", *sys.argv]))
        data["gold"].update(gold)

    locked_update(path, started, empty)
    for name, rec in systems.items():
        model, tok = load_model_and_tokenizer(rec["model"], dtype=eval_dtype())
        row = {"model": rec["model"], **{t: dict(Counter(p)) for t, p in ev.predict(ev.wrap(model, tok)).items()}}
        print(name, row, flush=True)
        # after each model: an interrupted run keeps what it measured, a run beside it keeps its own
        locked_update(path, lambda data, name=name, row=row: data["systems"].setdefault(name, {}).update(row), empty)


def step_calibrate(args) -> None:
    """A label-prior correction for every selected system alike (memmcl_merge/calibration.py): per
    model of ``--results`` that ``--only`` selects, one log-likelihood offset per label of each
    classification task it was scored on, fitted (``--calibration``: nll or metric) on
    ``--fit-limit`` rows of ``--fit-split`` (dev: never trained on, never tested), then applied to
    the same test rows as its recorded scores. Writes results/<results>_calibrated[_metric].json in
    the layout of a results file (so ``bar`` and ``report`` read it): each task's corrected
    ``score`` beside its uncorrected ``raw``, the offsets, and per-row answers (label indices) for
    paired tests; generated tasks (ASTE) are copied as they are. The log-likelihoods of each model
    are kept in runs/calibration/<results>/ (another method refits without running the model);
    saved after each model; a model already there is not run again. A row's own experts are
    corrected on their own tasks and carried along, and a soup keeps its members, so ``bar`` holds
    each row to the experts it was built from."""
    from memmcl_merge.calibration import METHODS, fit_label_offsets, predict, task_score
    from memmcl_merge.evaluation import Evaluator, choice_answers, group_means, resolve_tasks
    from memmcl_merge.io import read_json, write_json
    from memmcl_merge.models import load_model_and_tokenizer

    source = Results(args.results)
    source.check_dtype()  # its corrected scores sit beside the source's raw ones: scored alike or not at all
    out = Results(f"{args.results}_calibrated" + ("" if args.calibration == METHODS[0] else f"_{args.calibration}"))
    out.meta(machine=machine(), source=args.results, split=args.split, limit=args.limit, fit_split=args.fit_split,
             fit_limit=args.fit_limit, method=args.calibration, append={"commands": " ".join(["python", *sys.argv])})
    cache_dir = ROOT / "runs" / "calibration" / args.results
    rows = {"split": args.split, "limit": args.limit, "fit_split": args.fit_split, "fit_limit": args.fit_limit}
    evaluators: dict = {}

    def logged(model, tok, specs, split, limit, demos):
        key = (tuple(s.name for s in specs), split, demos)
        if key not in evaluators:
            evaluators[key] = Evaluator(specs, data=str(args.data), split=split, limit=limit, num_demos=demos,
                                        batch_size=SCORE_BATCH_SIZE)
        ev = evaluators[key]
        return choice_answers(ev.logged_samples(ev.wrap(model, tok))[1])

    def corrected(model_path: str, recorded: dict, specs, demos: int, cache: Path) -> dict | None:
        """``recorded`` with each task of ``specs`` rescored, corrected beside raw; None where the
        model folder is gone. The log-likelihoods come from ``cache`` when it holds this model's."""
        seen = read_json(cache) if cache.is_file() else {}
        if {k: seen.get(k) for k in rows} != rows or seen.get("model") != model_path \
                or any(s.name not in seen.get("fit", {}) for s in specs):
            if not (Path(model_path) / "config.json").is_file():
                return None
            model, tok = load_model_and_tokenizer(model_path, dtype=eval_dtype())
            seen = {**rows, "model": model_path, "fit": logged(model, tok, specs, args.fit_split, args.fit_limit, demos),
                    "test": logged(model, tok, specs, args.split, args.limit, demos)}
            write_json(cache, seen)
        scores = {t: dict(v) for t, v in recorded.items()}  # generated tasks stay as recorded
        for spec in specs:
            fit, test = seen["fit"][spec.name], seen["test"][spec.name]
            offsets = fit_label_offsets(fit["lls"], fit["gold"], spec.metric, method=args.calibration)
            raw, cal = predict(test["lls"]), predict(test["lls"], offsets)
            scores[spec.name] = {
                "score": task_score(spec.metric, test["gold"], cal), "raw": task_score(spec.metric, test["gold"], raw),
                "recorded": recorded[spec.name]["score"], "offsets": dict(zip(spec.labels, offsets, strict=True)),
                "fit_raw": task_score(spec.metric, fit["gold"], predict(fit["lls"])),
                "fit_score": task_score(spec.metric, fit["gold"], predict(fit["lls"], offsets)),
                "pred": "".join(map(str, cal)), "pred_raw": "".join(map(str, raw)), "gold": "".join(map(str, test["gold"]))}
        return scores

    def own_experts_corrected(own: dict) -> dict:
        """A row's own experts (``own_experts``), each corrected on its own task the same way, so the
        95% half of a corrected bar holds the row to corrected experts; an expert whose folder is
        gone is left out (named), never mixed in uncorrected. One cache per expert folder: runs that
        share experts score them once."""
        kept = {}
        for task, v in own.items():
            spec = resolve_tasks([task])[0]
            if spec.is_generative:
                kept[task] = v
                continue
            folder = v.get("train", {}).get("folder", "")
            got = corrected(folder, {task: v["score"]}, [spec], 0, cache_dir / "own_experts" / f"{variant_slug(folder)}.json")
            if got is None:
                print(f"own expert {task}: model folder {folder!r} is gone; left out of the corrected bar", flush=True)
                continue
            kept[task] = {**v, "score": got[task]}
        return kept

    for name, rec in source.data["systems"].items():
        if not args.only or not _selected(args, name) or out.has(name):
            continue
        t0 = time.perf_counter()
        specs = [s for s in resolve_tasks(list(rec["scores"])) if not s.is_generative]
        demos = 2 if "2-shot" in name else 0
        scores = corrected(rec.get("model", ""), rec["scores"], specs, demos, cache_dir / f"{variant_slug(name)}.json")
        if scores is None:
            print(f"{name}: model folder {rec.get('model')!r} is gone; not calibrated", flush=True)
            continue
        means = group_means(scores)
        carried = {"own_experts": own_experts_corrected(rec["own_experts"])} if rec.get("own_experts") else {}
        if rec.get("members"):  # a soup is held to the experts its members share
            carried["members"] = rec["members"]
        out.put(name, {"model": rec["model"], "seconds": time.perf_counter() - t0, "scores": scores, "means": means,
                       "raw_means": group_means({t: {"score": v.get("raw", v["score"])} for t, v in scores.items()}),
                       **carried})
        print(f"{name}: mean {means['all']:.3f} corrected, {out.data['systems'][name]['raw_means']['all']:.3f} raw; "
              + ", ".join(f"{s.name} {scores[s.name]['raw']:.3f}->{scores[s.name]['score']:.3f}" for s in specs), flush=True)


COMPARED = ("base zero-shot", "base 2-shot", "baseline task_arithmetic", "baseline ties", "baseline dare_ties",
            "single-stage CMA-ES", "multitask SFT")
OURS = "MEM-MCL stage 2 + curriculum"
OPT_IN = ("multitask SFT, proportional training rows", "multitask SFT, training seed 1",
          "multitask SFT, training seed 2", "multitask SFT, 3 epochs",
          "multitask SFT, 3 epochs, training seed 1", "multitask SFT, 3 epochs, training seed 2",
          "multitask SFT, 3 epochs, training seed 3",
          "multitask SFT, 128 teacher rows per task, 1.5 epochs")  # controls built only when --only selects them


CORE = (*COMPARED, "MEM-MCL stage 2", OURS)


def multitask_variants(rows: dict) -> dict[str, list[str]]:
    """The multitask SFT comparators of a results file besides its one run: name -> the runs it
    averages. Its seed mean (the one-epoch run with its other training seeds); each longer run
    (more passes over the same rows: the compute-matched comparator of runs whose experts trained
    longer), and its seed mean where other seeds were measured (a file of some seeds only, e.g. a
    calibrated one of the models still on disk, pools those); each soup (soup_variant.py, the
    comparator of a MEM-MCL soup of as many runs); each run on teacher rows (the comparator of a
    curriculum with ``teacher_rows``)."""
    out = {}
    seeds = [n for n in rows if n.startswith("multitask SFT, training seed")]
    if seeds and "multitask SFT" in rows:
        out[f"multitask SFT, mean of {len(seeds) + 1} training seeds"] = ["multitask SFT", *seeds]
    longer = sorted({m.group(1) for n in rows
                     if (m := re.fullmatch(r"(multitask SFT, [\d.]+ epochs)(, training seed \d+)?", n))})
    out.update({n: [n] for n in longer if n in rows})
    out.update({n: [n] for n in rows if n.startswith("multitask SFT") and (", soup of " in n or " teacher rows " in n)})
    for n in longer:
        pool = [*([n] if n in rows else []), *(m for m in rows if m.startswith(f"{n}, training seed "))]
        if len(pool) > 1:
            out[f"{n}, mean of {len(pool)} training seeds"] = pool
    return out


def _own_experts(rows: dict) -> dict:
    """Task -> the record of ``expert:<task> (own task)`` in a results file's systems."""
    return {k.split(":", 1)[1].removesuffix(" (own task)"): v for k, v in rows.items() if k.startswith("expert:")}


def step_report(args) -> None:
    """benchmarks/RESULTS.md tables and chart from the saved results (no model is run): the systems
    x tasks table of the core systems, the controlled runs, wall times, the bar, the experts matrix."""
    from memmcl_merge.evaluation import format_table
    from memmcl_merge.io import read_json, write_text

    rows = read_json(RESULTS / f"{args.results}.json")["systems"]
    own = _own_experts(rows)
    only = getattr(args, "only", "")
    # --only adds systems beyond the core ones to the table and the chart (e.g. a series' own MEM-MCL runs)
    shown = [*(n for n in CORE if n in rows),
             *(n for n in rows if only and n not in CORE and not n.startswith("expert:") and _selected(args, n))]
    columns = {name: rows[name]["scores"] for name in shown}
    if own:
        columns["expert (own task)"] = {t: v["scores"][t] for t, v in own.items()}
    command = f"python benchmarks/run_benchmark.py report --results {args.results}" + (f" --only '{only}'" if only else "")
    text = [f"<!-- generated by: {command} -->",
            "## Systems x tasks", "", format_table(columns), ""]
    variants = [n for n in rows if n not in CORE and not n.startswith("expert:")]
    if variants:
        text += ["## Controlled runs (each changes one thing against a core system)", "",
                 "| system | SC | ABSA | MAST | all | build s |", "|---|---|---|---|---|---|"]
        for n in [n for n in CORE if n in rows and "MEM-MCL" in n] + variants:
            m = rows[n]["means"]
            text.append(f"| {n} | " + " | ".join(f"{m.get(g, float('nan')):.3f}" for g in ("SC", "ABSA", "MAST", "all"))
                        + f" | {rows[n].get('build_seconds', 0):.0f} |")
        text.append("")
    text += ["## Wall time per system (this machine)", "", "| system | build s | eval s |", "|---|---|---|"]
    text += [f"| {n} | {v.get('build_seconds', 0):.0f} | {v['eval_seconds']:.0f} |" for n, v in rows.items()]
    text.append("")
    if OURS in rows:
        ours = rows[OURS]["scores"]
        text += [f"## The bar: {OURS} against each system", "",
                 "| against | tasks won | mean difference |", "|---|---|---|"]
        for other in COMPARED:
            if other in rows:
                wins = sum(ours[t]["score"] > rows[other]["scores"][t]["score"] for t in ours)
                text.append(f"| {other} | {wins}/{len(ours)} | "
                            f"{rows[OURS]['means']['all'] - rows[other]['means']['all']:+.3f} |")
        text += ["", "| task | expert on own task | MEM-MCL final | kept |", "|---|---|---|---|"]
        for t, v in own.items():
            e = v["scores"][t]["score"]
            if t in ours:
                text.append(f"| {t} | {e:.3f} | {ours[t]['score']:.3f} | "
                            f"{ours[t]['score'] / e if e else float('nan'):.0%} |")
        text.append("")
    if args.results == "systems" and (RESULTS / "experts.json").is_file():  # the matrix of these experts
        matrix = read_json(RESULTS / "experts.json")["systems"]
        text += ["## Experts x tasks (experts step, smaller sample per task)", "",
                 format_table({n.removeprefix("expert:"): v["scores"] for n, v in matrix.items()}), ""]
    chart = RESULTS / f"{args.results}.png"
    _chart({n: rows[n]["means"] for n in shown}, chart)
    text += [f"![group means](results/{chart.name})", ""]
    write_text(RESULTS / f"{args.results}_tables.md", "\n".join(text))
    print("\n".join(text))


def step_bar(args) -> None:
    """The issue's bar for the MEM-MCL runs of a results file that ``--only`` selects (e.g. draws of
    the weak sets): per run, and for the per-task mean over the runs, the tasks won against each
    compared system and the experts kept at 95% of their own score. Writes results/<results>_bar.json;
    runs no model."""
    from memmcl_merge.io import read_json, write_json

    rows = read_json(RESULTS / f"{args.results}.json")["systems"]
    field = getattr(args, "score_field", "score")
    if field != "score":  # e.g. "raw" of a calibrated file: the same systems (and own experts) before the correction
        def pick(v):
            return {**v, "score": v.get(field, v["score"])}

        rows = {n: {**r, "scores": {t: pick(v) for t, v in r["scores"].items()},
                    **({"own_experts": {t: {**v, "score": pick(v["score"])} for t, v in r["own_experts"].items()}}
                       if r.get("own_experts") else {})}
                for n, r in rows.items()}
    runs = _selected_runs(rows, args)
    own = {t: v["scores"][t]["score"] for t, v in _own_experts(rows).items()}
    tasks = list(rows[runs[0]]["scores"])

    def scores_of(name):
        return {t: rows[name]["scores"][t]["score"] for t in tasks}

    candidates = {n: scores_of(n) for n in runs}
    if len(runs) > 1:
        candidates[f"mean of {len(runs)} runs"] = {t: sum(c[t] for c in candidates.values()) / len(runs) for t in tasks}
    compared = {o: scores_of(o) for o in COMPARED if o in rows}

    def mean_of(pool):
        return {t: sum(rows[n]["scores"][t]["score"] for n in pool) / len(pool) for t in tasks}

    variants = multitask_variants(rows)
    compared.update({n: mean_of(pool) for n, pool in variants.items()})
    pools = {n: pool for n, pool in variants.items() if len(pool) > 1}  # for seed_tests
    seed_mean = next((n for n in pools if n.startswith("multitask SFT, mean of")), None)
    held = {n: _held_to(rows, n) for n in runs}
    # the mean over runs is held to their experts when they share them
    if len(runs) > 1 and all(held[n] == held[runs[0]] for n in runs):
        held[f"mean of {len(runs)} runs"] = held[runs[0]]
    reseeded = _expert_seed_scores(getattr(args, "expert_seeds", ""))
    out = {}
    for name, scores in candidates.items():
        won = {o: [t for t in tasks if scores[t] > other[t]] for o, other in compared.items()}
        experts = {t: v["score"]["score"] for t, v in held.get(name, {}).items()} or own
        short = {t: round(scores[t] / experts[t], 4) for t in tasks if t in experts and scores[t] < 0.95 * experts[t]}
        beats = {o: 2 * len(w) > len(tasks) for o, w in won.items()}
        out[name] = {"mean": sum(scores.values()) / len(tasks), "wins": {o: len(w) for o, w in won.items()},
                     "lost_to_multitask": [t for t in tasks if t not in won.get("multitask SFT", tasks)],
                     "kept": sum(t in experts for t in tasks) - len(short), "not_kept": short,
                     "bar_met": all(beats[o] for o in COMPARED if o in beats) and not short}
        # the same bar with another multitask SFT (its seed mean, more epochs) in place of its one run;
        # one verdict per multitask SFT in the file, printed instead of bar_met, which leaves the
        # multitask SFT out where the file has no one-epoch run (a calibrated one)
        others = [o for o in beats if o.startswith("multitask SFT")]
        verdicts = {"multitask SFT": out[name]["bar_met"]} if "multitask SFT" in beats else {}
        for alt in [o for o in others if o != "multitask SFT"]:
            key = "bar_met_against_multitask_seed_mean" if alt == seed_mean else f"bar_met_against {alt}"
            out[name][key] = verdicts[alt] = all(beats[o] for o in beats if o not in others or o == alt) and not short
        out[name]["bar_verdicts"] = verdicts
        line = ""
        if reseeded:  # the 95% half again, each re-seeded expert replaced by its mean over seeds
            means = {t: (experts[t] + sum(v)) / (1 + len(v)) for t, v in reseeded.items() if t in experts}
            yard = {**experts, **means}
            short_mean = {t: round(scores[t] / yard[t], 4) for t in tasks if t in yard and scores[t] < 0.95 * yard[t]}
            out[name].update(expert_seed_means={t: round(v, 4) for t, v in means.items()},
                             kept_against_expert_seed_means=sum(t in yard for t in tasks) - len(short_mean),
                             not_kept_against_expert_seed_means=short_mean)
            line = (f"; against the seed means of {', '.join(sorted(means))}: kept "
                    f"{out[name]['kept_against_expert_seed_means']}/{len(yard)} {short_mean or ''}")
        verdict = "; ".join(f"bar {'met' if v else 'not met'} against {o}" for o, v in verdicts.items()) or \
            f"bar {'met' if out[name]['bar_met'] else 'not met'} (no multitask SFT in the file)"
        print(f"{name}: mean {out[name]['mean']:.3f}, wins " + ", ".join(f"{o} {len(w)}/{len(tasks)}" for o, w in won.items())
              + f"; kept {out[name]['kept']}/{len(experts)} {short or ''}{line}; {verdict}")
    if len(runs) > 1:  # the runs as seeds of one system against each comparator's seeds
        tests = {o: seed_test(rows, runs, pool, tasks) for o, pool in pools.items()}
        out[f"mean of {len(runs)} runs"]["seed_tests"] = tests
        for o, t in tests.items():
            print(f"seed test, {len(runs)} runs against {o}: wins {t['wins']}, losses {t['losses']} (Welch p < {ALPHA}), "
                  f"{t['ties']} within the seed spread; per-task differences: {t['positive']}/{len(tasks)} positive, "
                  f"sign test p {t['sign_p']:.3f}, Wilcoxon p {t['wilcoxon_p']:.3f}; overall mean {t['mean_difference']:+.4f} "
                  f"(Welch p {t['mean_p']:.3f})")
    compared_means = {o: sum(v.values()) / len(tasks) for o, v in compared.items()}
    suffix = "" if field == "score" else f"_{field}"
    out_name = getattr(args, "bar_out", "") or f"{args.results}_bar{suffix}"
    write_json(RESULTS / f"{out_name}.json", {"only": args.only, "tasks": tasks, "compared_means": compared_means,
                                              "runs": out})


def step_paired(args) -> None:
    """A paired bootstrap over the test rows (benchmarks/paired.py) for the MEM-MCL runs ``--only``
    selects, as one system (their mean), against each multitask SFT comparator of the file (its seed
    means, longer runs and soups), or any systems ``--only`` selects against those ``--against``
    selects, on the tasks whose per-row answers the file keeps (a calibrated one: ``pred``, or
    ``pred_raw`` with ``--score-field raw``; the ASTE generations are not kept).
    Once over the rows alone, once over the rows and the runs on each side, and our share of each
    own expert's score. Writes results/<results>_paired[_<field>].json (or ``--bar-out``); runs no
    model."""
    from paired import expert_shares, paired_bootstrap

    from memmcl_merge.io import read_json, write_json
    from memmcl_merge.tasks import get_task

    rows = read_json(RESULTS / f"{args.results}.json")["systems"]
    field = getattr(args, "score_field", "score")
    key = "pred" if field == "score" else f"pred_{field}"
    against = getattr(args, "against", "")
    runs = _selected_runs(rows, args, mem_mcl_only=not against)
    tasks = [t for t, v in rows[runs[0]]["scores"].items() if key in v]
    if not tasks:
        raise SystemExit(f"results/{args.results}.json keeps no per-row answers ({key!r}) for {runs[0]!r}; "
                         "the calibrate step writes them")

    def answers(name, among=tasks):
        missing = [t for t in among if key not in rows[name]["scores"].get(t, {})]
        if missing:
            raise SystemExit(f"{name!r} has no per-row answers ({key!r}) for {', '.join(missing)}")
        return row_answers(rows[name], among, key)

    ours = [answers(n) for n in runs]
    # runs that share their own experts are held to those alone (a calibrated own_experts keeps their answers)
    held = [_held_to(rows, n) for n in runs]
    if held[0] and all(h == held[0] for h in held):
        experts = {t: row_answers({"scores": {t: v["score"]}}, [t], key)[t]
                   for t, v in held[0].items() if t in tasks and key in v["score"]}
    else:
        experts = {t: answers(rec_name, [t])[t] for t in tasks
                   if (rec_name := f"expert:{t} (own task)") in rows and key in rows[rec_name]["scores"].get(t, {})}
    metrics = {t: get_task(t).metric for t in tasks}
    if against:  # one named comparator (its runs pooled as seeds) instead of the multitask SFT's
        pool = [n for n in rows if n not in runs and _selected(args, n, against)]
        if not pool:
            raise SystemExit(f"--against {against!r} selects no other system of results/{args.results}.json")
        versus = {against.lstrip("="): pool}
    else:
        versus = multitask_variants(rows)
        if "multitask SFT" in rows:
            versus = {"multitask SFT": ["multitask SFT"], **versus}
    if not versus:
        raise SystemExit(f"results/{args.results}.json has no multitask SFT to compare with")
    out = {}
    for name, pool in versus.items():
        theirs = [answers(n) for n in pool]
        out[name] = {"theirs": pool, **{how: paired_bootstrap(ours, theirs, metrics, resamples=args.resamples,
                                                              seeds_too=how == "rows_and_runs")
                                        for how in ("rows", "rows_and_runs")}}
        for how in ("rows", "rows_and_runs"):
            r = out[name][how]
            print(f"{len(runs)} run(s) against {name} ({len(pool)}), resampling the {how.replace('_', ' ')}: "
                  f"won {r['wins']}, lost {r['losses']}, {r['ties']} of {len(tasks)} within the interval; mean over "
                  f"these tasks {r['mean']['difference']:+.4f} [{r['mean']['low']:+.4f}, {r['mean']['high']:+.4f}], "
                  f"p {r['mean']['p']:.3f}")
    shares = expert_shares(ours, experts, metrics, resamples=args.resamples)  # the same for every comparator
    if shares:
        print("share of the own expert (95% interval; share of resamples under 95%): " + ", ".join(
            f"{t} {v['share']:.3f} [{v['low']:.3f}, {v['high']:.3f}; {v['under_keep']:.2f}]" for t, v in shares.items()))
    suffix = "" if field == "score" else f"_{field}"
    write_json(RESULTS / f"{getattr(args, 'bar_out', '') or f'{args.results}_paired{suffix}'}.json",
               {"only": args.only, "runs": runs, "field": key, "tasks": tasks, "against": out, "expert_shares": shares})


ALPHA = 0.05


def seed_test(rows: dict, ours: list[str], theirs: list[str], tasks: list[str]) -> dict:
    """Runs that differ only by a seed, as samples of two systems: per task a Welch t-test of our
    scores against theirs (a win or a loss only where p < ALPHA, else a tie within the seed spread),
    and over tasks a sign test and a Wilcoxon signed-rank test of the per-task mean differences,
    plus a Welch test of the overall means. Seeds move the training only; the test rows are the same
    for every run, so their sampling error is not in these p-values."""
    import math
    import warnings

    from scipy import stats

    if len(ours) < 2 or len(theirs) < 2:
        raise ValueError(f"a seed test needs two or more runs a side, not {len(ours)} against {len(theirs)}")

    def scores(names, t):
        return [rows[n]["scores"][t]["score"] for n in names]

    per_task, diffs = {}, []
    for t in tasks:
        a, b = scores(ours, t), scores(theirs, t)
        d = round(sum(a) / len(a) - sum(b) / len(b), 9)  # equal means read as equal, not as float noise
        with warnings.catch_warnings():  # scipy warns on near-constant samples; the p-value is still right
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
        if math.isnan(p):  # both sides constant: equal is no difference, unequal is a difference every seed agrees on
            p = 1.0 if d == 0 else 0.0
        per_task[t] = {"difference": round(d, 4), "p": round(p, 4)}
        diffs.append(d)
    won = [t for t, v in per_task.items() if v["p"] < ALPHA and v["difference"] > 0]
    lost = [t for t, v in per_task.items() if v["p"] < ALPHA and v["difference"] < 0]
    positive = sum(d > 0 for d in diffs)
    nonzero = sum(d != 0 for d in diffs)
    overall = [[sum(rows[n]["scores"][t]["score"] for t in tasks) / len(tasks) for n in names] for names in (ours, theirs)]
    return {"ours": ours, "theirs": theirs, "per_task": per_task, "wins": won, "losses": lost,
            "ties": len(tasks) - len(won) - len(lost), "positive": positive,
            "sign_p": float(stats.binomtest(positive, nonzero, 0.5).pvalue) if nonzero else 1.0,
            "wilcoxon_p": float(stats.wilcoxon(diffs).pvalue) if nonzero else 1.0,
            "mean_difference": round(sum(diffs) / len(tasks), 4),
            "mean_p": float(stats.ttest_ind(*overall, equal_var=False).pvalue)}


def _expert_seed_scores(name: str) -> dict[str, list[float]]:
    """Task -> own-task scores of its expert trained again with training seeds other than 0
    (results/NAME.json of expert_seed_variant.py); {} without ``--expert-seeds``."""
    from memmcl_merge.io import read_json

    if not name:
        return {}
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"--expert-seeds {name}: no results file {path} (expert_seed_variant.py writes it)")
    out: dict[str, list[float]] = {}
    for key, row in read_json(path)["systems"].items():
        task, _, seed = key.partition(", training seed ")
        if seed != "0":  # seed 0 is the expert the bar holds to already
            out.setdefault(task, []).append(row["scores"][task]["score"])
    return out


def _held_to(rows: dict, name: str) -> dict:
    """The own experts a MEM-MCL row is held to in the 95% half of the bar: its own (evolve_variant.py
    with experts.train.X=V), else those of the evolution run whose folder its model lies in (a
    curriculum_variant.py / blend_variant.py --run model from that run's merge), else, for a soup
    (soup_variant.py), those its members share; {} for the benchmark's."""
    row = rows.get(name, {})
    if row.get("own_experts"):
        return row["own_experts"]

    def of_model(model: str) -> dict:
        best = ("", {})
        for other in rows.values():
            run = str(Path(other["model"]).parent) if other.get("own_experts") and other.get("model") else ""
            if run and model.startswith(run + "/") and len(run) > len(best[0]):
                best = (run, other["own_experts"])
        return best[1]

    held = of_model(str(row.get("model", "")))
    members = [of_model(str(m)) for m in row.get("members", [])]
    if not held and members and all(m and m == members[0] for m in members):
        held = members[0]
    return held


def step_adopt(args) -> None:
    """Copy rows that ``--only`` selects from another results file (``--source``) into ``--results``,
    each marked with where it came from, so a series on other experts (e.g. bench_experts3.yml) is
    judged by ``bar`` / ``report`` against the systems those experts do not change (base, multitask
    SFT) without scoring them again. A copied run that trained its own experts (``own_experts``) also
    gives their ``expert:<task> (own task)`` rows. Rows already in ``--results`` are kept; no model runs."""
    from memmcl_merge.io import read_json

    if not args.source or not args.only:
        raise SystemExit("adopt needs --source NAME (the results file to copy from) and --only (which rows)")
    path = RESULTS / f"{args.source}.json"
    if not path.is_file():
        raise SystemExit(f"no results file {path}")
    source = read_json(path)["systems"]
    res = Results(args.results)
    picked = [n for n in source if _selected(args, n)]
    if not picked:
        raise SystemExit(f"--only {args.only!r} selects no row of {path}")
    for name in picked:
        rows = {name: source[name]}
        for task, v in source[name].get("own_experts", {}).items():
            rows[f"expert:{task} (own task)"] = {"scores": {task: v["score"]}, "eval_seconds": v["eval_seconds"],
                                                 "model": v["train"]["folder"]}
        for n, row in rows.items():
            if not res.has(n):
                res.put(n, {**row, "from": f"{args.source}.json"}, stamp=False)
                print(f"adopted {n}", flush=True)


def _chart(means: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = ["SC", "ABSA", "MAST", "all"]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / max(1, len(means))
    for i, (name, m) in enumerate(means.items()):
        ax.bar([g + i * width for g in range(len(groups))], [m.get(g, 0) for g in groups], width, label=name)
    ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], [f"mean {g}" for g in groups])
    ax.set_ylabel("score (test_500 subset)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


STEPS = {"adopt": step_adopt, "answer_window": step_answer_window, "label_shares": step_label_shares, "calibrate": step_calibrate, "report": step_report, "bar": step_bar, "paired": step_paired, "pipeline": step_pipeline, "speed": step_speed, "zero_shot": step_zero_shot, "experts": step_experts, "evolve": step_evolve, "systems": step_systems}


def main(argv=None) -> None:
    global SCORE_BATCH_SIZE
    from memmcl_merge.calibration import METHODS  # numpy only: the --calibration choices

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=sorted(STEPS))
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--split", default="test_500")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--tasks", default="all")
    p.add_argument("--config", type=Path, default=BENCH_CONFIG, help="Run YAML for the trained systems.")
    p.add_argument("--run", type=Path, default=ROOT / "runs" / "default", help="pipeline: the run folder.")
    p.add_argument("--name", default="default_pipeline", help="pipeline: the results file name.")
    p.add_argument("--command", default="make demo", help="pipeline: the command that made the run.")
    p.add_argument("--only", default="", help="systems: comma-separated words (', ' stays inside a word); run only systems whose "
                        "name has one; '=NAME' selects that one system exactly.")
    p.add_argument("--extra", action="append", default=[], metavar="NAME=FOLDER",
                   help="label_shares, systems: also count / score a model folder that is not a system of "
                        "--results (e.g. a stage-1 or stage-2 merge); repeatable.")
    p.add_argument("--results", default="systems",
                   help="systems, report: the results file (benchmarks/results/<name>.json) the scores go to / come from.")
    p.add_argument("--source", default="", help="adopt: the results file to copy rows from.")
    p.add_argument("--expert-seeds", default="", help="bar: a results file of benchmarks/expert_seed_variant.py; the "
                   "95%% half is also judged against each re-seeded expert's mean over its seeds.")
    p.add_argument("--score-field", default="score", help="bar: read this field of each task's scores instead of "
                   "'score' (e.g. 'raw' of a calibrated file); writes results/<results>_bar_<field>.json. paired: "
                   "'raw' reads the uncorrected per-row answers (pred_raw), into <results>_paired_raw.json.")
    p.add_argument("--bar-out", default="", help="bar, paired: write results/<NAME>.json instead (another "
                   "selection of the same results file beside the first).")
    p.add_argument("--against", default="", help="paired: compare the --only systems (any, not only MEM-MCL "
                   "runs) with the systems this selects (same word syntax as --only; several are pooled as seeds) "
                   "instead of the multitask SFT comparators; e.g. one stage-2 merge against another.")
    p.add_argument("--resamples", type=int, default=2000, help="paired: bootstrap resamples of the test rows.")
    p.add_argument("--calibration", default=METHODS[0], choices=METHODS,
                   help="calibrate: how the label offsets are fitted (memmcl_merge/calibration.py).")
    p.add_argument("--fit-split", default="dev", help="calibrate: the split the label offsets are fitted on.")
    p.add_argument("--fit-limit", type=int, default=200, help="calibrate: rows per task of --fit-split (stratified).")
    p.add_argument("--batch-size", type=int, default=SCORE_BATCH_SIZE,
                   help="rows per scoring batch (16 suits a 2-core CPU; 64 or more a GPU).")
    args = p.parse_args(argv)
    SCORE_BATCH_SIZE = args.batch_size
    if args.step not in ("pipeline", "speed", "report", "bar", "paired", "adopt") and not (args.data / "tasks.json").is_file():
        sys.exit(f"no benchmark data at {args.data} (expected the ../shared/data layout with tasks.json)")
    STEPS[args.step](args)


if __name__ == "__main__":
    main()
