"""Blend the curriculum model back toward the merge it started from, by a weight picked on weak data.

    blended = merge + alpha * (curriculum - merge)      alpha from ``blend.grid``

Why: the curriculum SFT over-corrects the labels the stage-2 merge under-answers (benchmarks/RESULTS.md,
session 8: a merge answering "hate" on 73 of 500 test rows, gold 211, came out of the curriculum
answering it on 460). A weight-space interpolation between a fine-tuned model and its start
(WiSE-FT, Wortsman et al. 2022) keeps part of what the fine-tuning taught and part of the start's
balance; the evolution's own fitness on the weak sets (dev split: neither the curriculum's training
rows nor test) decides how much. ``alpha = 1`` in the grid keeps the curriculum model as it is, so
the blend can only be picked over it when the weak sets prefer it.

The blend is one ``memmcl`` merge (base: the merge, one member: the curriculum model, weight alpha),
so its recipe (``recipes/blend.yml``; ``recipes/<folder name>.yml`` for another ``out``) runs with plain ``mergekit-yaml``.
"""

from __future__ import annotations

import time
from pathlib import Path

MARKER = "memmcl_blend.json"


def blend_model_dir(cfg) -> Path:
    return cfg.output_dir / "blend"


def run_blend(cfg, progress=print, start: Path | None = None, trained: Path | None = None,
              out: Path | None = None) -> dict:
    """Score every alpha of ``cfg.blend.grid`` on the weak sets and save the best blend into ``out``
    (default ``<output_dir>/blend``), complete or absent. ``start`` defaults to the curriculum's start
    model, ``trained`` to the curriculum's output."""
    from .config import changed_settings
    from .curriculum import MARKER as CURRICULUM_MARKER
    from .curriculum import curriculum_model_dir, start_model_dir
    from .evolve import WeakSetScorer, format_weak_scores
    from .experts import save_plain_model
    from .io import fresh_tmp_dir, read_json, replace_dir, write_json
    from .merge_methods.inprocess import MemmclMerger
    from .recipes import write_recipe

    start = Path(start) if start is not None else start_model_dir(cfg)
    trained = Path(trained) if trained is not None else curriculum_model_dir(cfg)
    final = Path(out) if out is not None else blend_model_dir(cfg)
    sources = {"start_model": str(start), "trained_model": str(trained)}
    marker = final / MARKER
    if marker.is_file():
        done = read_json(marker)
        changed = changed_settings(done.get("config"), cfg.blend)
        changed += [k for k, v in sources.items() if done.get(k) != v]
        if changed:
            raise ValueError(f"blend: {final} was made with other settings (differs in: {', '.join(changed)}); "
                             "delete that folder to blend again with these")
        if progress:
            progress(f"blend: done already (alpha {done['alpha']}), skipped")
        return done
    if not (trained / CURRICULUM_MARKER).is_file():
        raise FileNotFoundError(f"blend: no finished curriculum model at {trained}; run the curriculum first")
    if not (start / "config.json").is_file():
        raise FileNotFoundError(f"blend: no start model at {start}")

    t0 = time.perf_counter()
    weak = WeakSetScorer(cfg, start, progress)
    merger = MemmclMerger.from_paths(str(start), {"curriculum": trained})

    def apply(alpha: float) -> None:
        weak.load(merger.merge({"experts": {"curriculum": {"weight": alpha}}}))

    tried = []
    for alpha in cfg.blend.grid:
        apply(alpha)
        scores, fitness = weak.score()
        tried.append({"alpha": alpha, "fitness": fitness, "scores": scores})
        if progress:
            progress(f"blend: alpha {alpha:g} -> weak-set fitness {tried[-1]['fitness']:.4f}")
    # ties go to the larger alpha: keep as much of the curriculum as the weak sets allow
    best = max(tried, key=lambda r: (r["fitness"], r["alpha"]))
    apply(best["alpha"])
    tmp = fresh_tmp_dir(final)
    save_plain_model(weak.model, weak.tok, tmp, save_dtype="bfloat16")
    recipe = write_recipe(cfg.output_dir / "recipes" / f"{final.name}.yml", start, {"curriculum": trained},
                          {"experts": {"curriculum": {"weight": best["alpha"]}}}, dtype="float32",
                          out_dtype="bfloat16",
                          comment=(f"MEM-MCL blend: stage-2 merge + {best['alpha']:g} x (curriculum - merge), "
                                   f"the best of alphas {list(cfg.blend.grid)} on the weak sets "
                                   f"(fitness {best['fitness']:.4f})"))
    record = {**sources, "alpha": best["alpha"], "fitness": best["fitness"], "tried": tried,
              "recipe": str(recipe), "config": cfg.blend.model_dump(mode="json"),
              "seconds": time.perf_counter() - t0}
    write_json(tmp / MARKER, record)
    replace_dir(tmp, final)
    if progress:
        progress(f"blend: alpha {best['alpha']:g} (weak-set fitness {best['fitness']:.4f}) -> {final}; winner on "
                 "the weak sets:\n" + format_weak_scores(best["scores"]))
    return record
