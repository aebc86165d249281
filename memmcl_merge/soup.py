"""A model soup: the uniform weight average of finished models of one architecture (Wortsman et al.
2022), merged by mergekit's own ``linear`` method from a plain recipe that ``mergekit-yaml`` reruns.

The curriculum uses it with ``curriculum.seeds: N`` (N trainings from the same start, training seeds
``train.seed`` ... ``train.seed + N - 1``, averaged); what it measured on real data is in that field's
description and benchmarks/RESULTS.md, sessions 33-36.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml


def soup_recipe(models: Sequence[Path]) -> dict:
    """The mergekit config of the uniform average of ``models`` (float32 arithmetic, saved in bf16)."""
    return {"merge_method": "linear", "dtype": "float32", "out_dtype": "bfloat16",
            "models": [{"model": str(Path(m).resolve()), "parameters": {"weight": 1.0}} for m in models]}


def soup_models(models: Sequence[Path], out: Path, recipe: Path, comment: str = "") -> Path:
    """Average ``models`` into ``out`` (complete or absent: merged into a temporary folder, then moved)
    and write the recipe to ``recipe``; a model folder that is missing is named before any work."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    from .io import fresh_tmp_dir, replace_dir, write_text

    if len(models) < 2:
        raise ValueError(f"a soup needs at least two models, got {len(models)}")
    missing = [str(m) for m in models if not (Path(m) / "config.json").is_file()]
    if missing:
        raise FileNotFoundError(f"soup: not a model folder (no config.json): {', '.join(missing)}")
    config = soup_recipe(models)
    header = f"# {comment}\n" if comment else ""
    write_text(recipe, header + yaml.safe_dump(config, sort_keys=False))
    tmp = fresh_tmp_dir(out)
    run_merge(MergeConfiguration.model_validate(config), str(tmp),
              options=MergeOptions(copy_tokenizer=True, write_model_card=False, quiet=True))
    return replace_dir(tmp, out)
