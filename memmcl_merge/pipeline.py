"""One command for the whole method: experts -> stage 1 -> stage 2 -> curriculum -> [blend] -> evaluation
-> report.

Every step is skipped when its output is complete and resumes when it was interrupted (each step
keeps its own journal/markers); ``<output_dir>/pipeline.json`` records what ran and how long it took.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .io import read_json, write_json, write_text

STEPS = ("experts", "evolve", "curriculum", "blend", "evaluate", "report")


class PipelineState:
    def __init__(self, path: Path):
        self.path = path
        self.data = read_json(path) if path.is_file() else {"steps": {}}

    def done(self, step: str) -> bool:
        return self.data["steps"].get(step, {}).get("status") == "done"

    def finish(self, step: str, seconds: float, **info) -> None:
        prev = self.data["steps"].get(step, {})
        self.data["steps"][step] = {"status": "done", "seconds": prev.get("seconds", 0.0) + seconds, **info}
        write_json(self.path, self.data)

    def spent(self, step: str, seconds: float) -> None:
        """Time spent in an interrupted step counts towards its total when it is resumed."""
        entry = self.data["steps"].setdefault(step, {"status": "partial", "seconds": 0.0})
        entry["seconds"] = entry.get("seconds", 0.0) + seconds
        write_json(self.path, self.data)


def final_model(cfg) -> Path:
    from .blend import blend_model_dir
    from .curriculum import curriculum_model_dir
    from .evolve import final_model_dir

    if not cfg.curriculum.enabled:
        return final_model_dir(cfg)
    return blend_model_dir(cfg) if cfg.blend.enabled else curriculum_model_dir(cfg)


def systems(cfg) -> dict[str, str]:
    """The models the report compares: base, the merge of the last stage, the curriculum model
    (when a blend follows it), the final model."""
    from .curriculum import curriculum_model_dir
    from .evolve import final_model_dir
    from .models import resolve_model

    out = {"base": resolve_model(cfg.base_model), "merged": str(final_model_dir(cfg))}
    if cfg.curriculum.enabled and cfg.blend.enabled:
        out["curriculum"] = str(curriculum_model_dir(cfg))
    if cfg.curriculum.enabled:
        out["final"] = str(final_model(cfg))
    return out


def evaluate_systems(cfg, progress=print) -> dict[str, dict]:
    """Score each system on the final-eval split; each result is saved as soon as it is measured."""
    from .evaluation import evaluate_model

    fe = cfg.final_eval
    settings = {"data": cfg.data, "split": fe.split, "limit": fe.limit, "num_demos": fe.num_demos,
                "tasks": list(cfg.tasks), "seed": cfg.seed}
    out = {}
    for name, ref in systems(cfg).items():
        path = cfg.output_dir / "eval" / f"{name}.json"
        saved = read_json(path) if path.is_file() else None
        if saved is not None and saved.get("settings") == settings:
            out[name] = saved
            continue
        if progress:
            progress(f"evaluate: {name} ({ref}) on {fe.split}, {fe.limit or 'all'} per task")
        res = evaluate_model(ref, cfg.tasks, data=cfg.data, split=fe.split, limit=fe.limit,
                             num_demos=fe.num_demos, batch_size=fe.batch_size)
        out[name] = {"settings": settings, "model": ref, **res}
        write_json(path, out[name])
    return out


def run_pipeline(cfg, config_path: Path | None = None, progress=print, until: str | None = None) -> dict:
    """Run (or resume) the whole pipeline described by ``cfg``; returns where the outputs are."""
    from .blend import run_blend
    from .curriculum import run_curriculum
    from .evolve import run_plan
    from .experts import train_experts

    if until is not None and until not in STEPS:
        raise ValueError(f"unknown step {until!r}; steps are {', '.join(STEPS)}")
    cfg.output_dir.mkdir(parents=True, exist_ok=True)
    if config_path is not None:
        shutil.copyfile(config_path, cfg.output_dir / "config.yml")  # the run is described by this file
    state = PipelineState(cfg.output_dir / "pipeline.json")
    actions = {
        "experts": lambda: train_experts(cfg, progress=bool(progress)),
        "evolve": lambda: run_plan(cfg, progress=progress),
        "curriculum": (lambda: run_curriculum(cfg, progress=progress)) if cfg.curriculum.enabled else None,
        "blend": (lambda: run_blend(cfg, progress=progress)) if cfg.curriculum.enabled and cfg.blend.enabled else None,
        "evaluate": lambda: evaluate_systems(cfg, progress=progress),
        "report": lambda: write_report(cfg, state),
    }
    for step in STEPS:
        if actions[step] is None:
            continue
        if state.done(step) and step != "report":
            if progress:
                progress(f"[{step}] done already, skipped")
        else:
            if progress:
                progress(f"[{step}] ...")
            t0 = time.perf_counter()
            try:
                actions[step]()
            except BaseException:
                state.spent(step, time.perf_counter() - t0)
                raise
            state.finish(step, time.perf_counter() - t0)
        if step == until:
            break
    return {"report": str(cfg.output_dir / "report.md"), "final_model": str(final_model(cfg))}


# -- report ---------------------------------------------------------------------------------------
def write_report(cfg, state: PipelineState) -> Path:
    from .blend import MARKER as BLEND_MARKER
    from .blend import blend_model_dir
    from .curriculum import MARKER as CURRICULUM_MARKER
    from .curriculum import curriculum_model_dir
    from .evaluation import format_table, group_means
    from .evolve import MARKER as SEARCH_MARKER
    from .evolve import plot_fitness, stage_dir

    out = cfg.output_dir
    evals = {n: read_json(p) for n in systems(cfg) if (p := out / "eval" / f"{n}.json").is_file()}
    searches = {p.key: read_json(stage_dir(cfg, p.key) / SEARCH_MARKER) for p in cfg.plan()
                if (stage_dir(cfg, p.key) / SEARCH_MARKER).is_file()}
    fig = None
    if searches:
        fig = plot_fitness({k: Path(v["journal"]) for k, v in searches.items()}, out / "report_fitness.png",
                           title="weak-set fitness per search")
    lines = [f"# MEM-MCL run report: {cfg.name}", "",
             (f"Base model `{cfg.base_model}`, data `{cfg.data}`, {len(cfg.tasks)} tasks. "
              f"Config: `{out / 'config.yml'}`."), "", "## Steps", "", "| step | seconds |", "|---|---|"]
    for step in STEPS:
        if step in state.data["steps"]:
            lines.append(f"| {step} | {state.data['steps'][step]['seconds']:.0f} |")
    if evals:
        fe = cfg.final_eval
        lines += ["", (f"## Scores ({fe.split} split, {fe.limit or 'all'} examples per task, "
                       f"{fe.num_demos} demonstrations)"), "",
                  format_table({n: e["scores"] for n, e in evals.items()})]
        if "base" in evals and ("final" in evals or "merged" in evals):
            best = "final" if "final" in evals else "merged"
            gain = group_means(evals[best]["scores"])["all"] - group_means(evals["base"]["scores"])["all"]
            lines += ["", f"Mean over tasks, {best} minus base: {gain:+.3f}."]
    if searches:
        lines += ["", "## Evolution", "",
                  "| search | members | evaluations | start fitness | best fitness | seconds | recipe |",
                  "|---|---|---|---|---|---|---|"]
        for k, v in searches.items():
            lines.append(f"| {k} | {', '.join(v['members'])} | {v['evaluations']} | {v['start_fitness']:.4f} | "
                         f"{v['best_fitness']:.4f} | {v['seconds']:.0f} | `{v['recipe']}` |")
        if fig:
            lines += ["", f"![fitness]({fig.name})"]
        lines += ["", "Reproduce any stage with plain mergekit: `mergekit-yaml <recipe> OUT`."]
    cur = curriculum_model_dir(cfg) / CURRICULUM_MARKER
    if cfg.curriculum.enabled and cur.is_file():
        c = read_json(cur)
        lines += ["", "## Curriculum (easiest first)", "", "| # | task | difficulty | rows |", "|---|---|---|---|"]
        for i, (d, ph) in enumerate(zip(c["plan"], c["phases"]), 1):
            lines.append(f"| {i} | {d['task']} | {d['score']:.3f} | {ph['rows']} |")
        if c.get("members"):
            lines += ["", (f"The final model is the soup of {len(c['members'])} training seeds "
                           f"(`mergekit-yaml {c['recipe']} OUT` rebuilds it).")]
    blend = blend_model_dir(cfg) / BLEND_MARKER
    if cfg.curriculum.enabled and cfg.blend.enabled and blend.is_file():
        b = read_json(blend)
        lines += ["", "## Blend (merge + alpha x (curriculum - merge))", "", "| alpha | weak-set fitness |",
                  "|---|---|"]
        lines += [f"| {r['alpha']:g}{' (kept)' if r['alpha'] == b['alpha'] else ''} | {r['fitness']:.4f} |"
                  for r in b["tried"]]
        lines += ["", f"Recipe: `{b['recipe']}`"]
    lines += ["", f"Final model: `{final_model(cfg)}`", ""]
    report = write_text(out / "report.md", "\n".join(lines))
    if final_model(cfg).is_dir():
        write_model_card(cfg, evals, searches)
    return report


def write_model_card(cfg, evals: dict, searches: dict) -> Path:
    from .evaluation import format_table

    model = final_model(cfg)
    then = "no curriculum."
    if cfg.curriculum.enabled:
        seeds = cfg.curriculum.seeds
        then = "curriculum SFT, easiest task first" + (
            f" ({seeds} training seeds averaged: a model soup)" if seeds > 1 else "") + (
            ", blended back toward the merge by a weight picked on the weak data." if cfg.blend.enabled else ".")
    front = ["---", "library_name: transformers", "license: apache-2.0", f"base_model: {cfg.base_model}",
             "tags: [merge, mergekit, memmcl, sentiment-analysis, text-generation]", "---", ""]
    body = [f"# {cfg.name}: a MEM-MCL sentiment model", "",
            (f"Built from `{cfg.base_model}` by memmcl-merge: one LoRA expert per task ({len(cfg.tasks)} tasks), "
             f"merged in {len({k.split('/')[0] for k in searches})} evolutionary stage(s) with the `memmcl` "
             "mergekit method (CMA-ES on weak data), then " + then), "",
            ("Prompts follow `memmcl_merge/tasks.py` (plain text, no chat template); score it with "
             "`lm_eval --include_path <memmcl evals folder> --tasks 'sentiment_*'`."), ""]
    if evals:
        body += ["## Scores", "", format_table({n: e["scores"] for n, e in evals.items()}), ""]
    return write_text(model / "README.md", "\n".join(front + body))
