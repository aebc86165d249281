"""Render ``memmcl`` merges as plain mergekit YAML (``mergekit-yaml RECIPE OUT`` runs them).

The evolution driver emits its best candidate with :func:`write_recipe`; :func:`read_recipe` gives
back ``(base, experts, params)`` for the in-process path
(:class:`memmcl_merge.merge_methods.inprocess.MemmclMerger`). Light module: only PyYAML.

``params`` (the same mapping the in-process merge takes)::

    {
        # global -> the YAML's top-level `parameters:`; all optional (defaults shown)
        "scale": 1.0,                    # merged = base + scale * sum_i w_i * sparsify(delta_i)
        "consensus": False,              # TIES sign election (mergekit semantics)
        "sparsify_method": "magnitude",  # or "dare" (random drop + 1/density rescale, seeded)
        "normalize": False,              # divide by the sum of the weights
        "seed": 0,                       # DARE seed (combined with tensor name and expert position)
        # optional per-expert defaults, also in the top-level block
        "weight": 0.2,
        "density": 1.0,
        # per expert -> that model's `parameters:`; keys are the names used in `experts`
        "experts": {
            "sst2": {"weight": 0.3, "density": 0.8},
            "sst5": {"weight": [0.2, 0.4],            # per-layer gradient (mergekit list)
                     "density": [{"filter": "embed_tokens", "value": 1.0},
                                 {"value": 0.7}]},    # filters: first substring match wins
        },
    }

Each value is a mergekit parameter setting: a scalar; a list of numbers, which mergekit spreads
evenly over the layers and interpolates linearly (layer ``i`` of ``N`` at ``t = i / (N - 1)``; the
embeddings, final norm and ``lm_head`` take the first value); or a list of ``{filter, value}``
entries, matched as substrings of the tensor name (``embed_tokens``, ``lm_head``, ``norm`` - the
last matches every norm - or ``layers.3.``), the first match winning, an entry without ``filter``
matching everything. So "per-layer-group" values are gradients, or filters on ``layers.<i>.``.
Every expert needs a weight, its own or the global one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

METHOD = "memmcl"
GLOBAL_PARAMS = ("scale", "consensus", "sparsify_method", "normalize", "seed")
EXPERT_PARAMS = ("weight", "density")

PathLike = str | os.PathLike


def _plain(value: Any, where: str) -> Any:
    """A YAML-safe copy of a parameter setting (numpy/torch values become Python numbers)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        bad = sorted(set(value) - {"filter", "value"})
        if bad or "value" not in value:
            raise ValueError(f"{where}: a conditional setting has keys 'filter' (optional) and 'value'; "
                             f"got {dict(value)!r}")
        out = {}
        if value.get("filter") is not None:
            out["filter"] = str(value["filter"])
        out["value"] = _plain(value["value"], where)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, (int, float)):  # numpy scalar types that lack tolist are unusual
        return float(value)
    raise ValueError(f"{where}: unsupported parameter value {value!r}")


def render_recipe(base: PathLike, experts: Mapping[str, PathLike], params: Mapping[str, Any], *,
                  dtype: str | None = "float32", out_dtype: str | None = None,
                  tokenizer_source: str | None = None, comment: str | None = None) -> str:
    """The YAML text of a ``memmcl`` merge (see :func:`write_recipe`)."""
    params = dict(params)
    per_expert = dict(params.pop("experts", None) or {})
    unknown = sorted(set(params) - set(GLOBAL_PARAMS) - set(EXPERT_PARAMS))
    if unknown:
        raise ValueError(f"unknown memmcl parameter(s) {unknown}; allowed: "
                         f"{list(GLOBAL_PARAMS + EXPERT_PARAMS)} and 'experts'")
    unknown = sorted(set(per_expert) - set(experts))
    if unknown:
        raise ValueError(f"params for unknown expert(s) {unknown}; experts are {list(experts)}")
    if not experts:
        raise ValueError("a recipe needs at least one expert")

    config: dict[str, Any] = {"merge_method": METHOD, "base_model": str(base)}
    if dtype:
        config["dtype"] = dtype
    if out_dtype:
        config["out_dtype"] = out_dtype
    if tokenizer_source:
        config["tokenizer_source"] = tokenizer_source
    top = {k: _plain(v, k) for k, v in params.items()}
    if top:
        config["parameters"] = top
    models = []
    for name, path in experts.items():
        own = dict(per_expert.get(name) or {})
        bad = sorted(set(own) - set(EXPERT_PARAMS))
        if bad:
            raise ValueError(f"expert {name!r}: per-expert parameters are {list(EXPERT_PARAMS)}, got {bad}")
        if "weight" not in own and "weight" not in params:
            raise ValueError(f"expert {name!r} has no weight (give it one, or a global 'weight')")
        entry: dict[str, Any] = {"model": str(path)}
        if own:
            entry["parameters"] = {k: _plain(v, f"{name}.{k}") for k, v in own.items()}
        models.append(entry)
    config["models"] = models

    header = [f"# {line}" if line else "#" for line in (comment or "").splitlines()]
    header.append("# experts: " + ", ".join(f"{n} = {p}" for n, p in experts.items()))
    body = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=100)
    return "\n".join(header) + "\n" + body


def write_recipe(path: PathLike, base: PathLike, experts: Mapping[str, PathLike],
                 params: Mapping[str, Any], *, dtype: str | None = "float32",
                 out_dtype: str | None = None, tokenizer_source: str | None = None,
                 comment: str | None = None) -> Path:
    """Write a ``memmcl`` mergekit YAML atomically (temporary file, then ``os.replace``).

    ``base`` and the ``experts`` paths are written as given; relative paths are resolved by
    mergekit against the working directory of ``mergekit-yaml``. Experts are listed in the order
    of ``experts`` (that order also seeds the DARE masks, as in the in-process path). ``params``
    is described in the module docstring; ``dtype`` is the merge arithmetic's input dtype
    (``float32`` by default, which the in-process path matches bit for bit), ``out_dtype`` the
    saved dtype. ``comment`` lines go on top. Returns the path.
    """
    from .io import write_text

    text = render_recipe(base, experts, params, dtype=dtype, out_dtype=out_dtype,
                         tokenizer_source=tokenizer_source, comment=comment)
    return write_text(Path(path), text)


def read_recipe(path: PathLike) -> tuple[str, dict[str, str], dict[str, Any]]:
    """``(base, experts, params)`` of a ``memmcl`` recipe with a ``models:`` list.

    Expert names are the last path component of each model (``runs/default/experts/sst2`` ->
    ``sst2``), made unique with a numeric suffix when needed.
    """
    with open(path, encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    if config.get("merge_method") != METHOD:
        raise ValueError(f"{path}: merge_method is {config.get('merge_method')!r}, not {METHOD!r}")
    if not config.get("base_model"):
        raise ValueError(f"{path}: no base_model")
    if not config.get("models"):
        raise ValueError(f"{path}: read_recipe handles `models:` recipes only")
    base = str(config["base_model"])
    params: dict[str, Any] = dict(config.get("parameters") or {})
    experts: dict[str, str] = {}
    per_expert: dict[str, Any] = {}
    for entry in config["models"]:
        model = str(entry["model"])
        if model == base:
            continue
        name = Path(model.rstrip("/")).name or model
        unique, i = name, 2
        while unique in experts:
            unique, i = f"{name}_{i}", i + 1
        experts[unique] = model
        if entry.get("parameters"):
            per_expert[unique] = dict(entry["parameters"])
    if per_expert:
        params["experts"] = per_expert
    return base, experts, params


def _is_local(path: str) -> bool:
    # A Hugging Face repo id has at most one "/"; anything else can only be a local path.
    return path.startswith(("/", ".", "~")) or path.count("/") > 1 or os.path.exists(path)


def recipe_models(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(role, path)`` of every model a mergekit config refers to (base first)."""
    found: list[tuple[str, str]] = []
    if config.get("base_model"):
        found.append(("base model", str(config["base_model"])))
    entries = list(config.get("models") or [])
    for out_slice in config.get("slices") or []:
        entries.extend(out_slice.get("sources") or [])
    for module in (config.get("modules") or {}).values():
        entries.extend(module.get("models") or [])
        for out_slice in module.get("slices") or []:
            entries.extend(out_slice.get("sources") or [])
    for entry in entries:
        path = str(entry["model"])
        if all(p != path for _, p in found):
            found.append(("model", path))
    return found


def check_recipe(path: PathLike, *, root: PathLike | None = None, allow_hub: bool = True) -> None:
    """Fail early, with every problem listed, when models a recipe needs are not there.

    Relative paths are resolved against ``root`` (default: the working directory, as mergekit
    does). Each local model folder must hold ``config.json`` and ``model.safetensors`` /
    ``pytorch_model.bin`` (or their ``.index.json``). Names that could be Hugging Face repo ids
    (``org/name``) are skipped when ``allow_hub`` is true. Raises FileNotFoundError.
    """
    with open(path, encoding="utf-8") as fh:
        config = yaml.safe_load(fh) or {}
    base_dir = Path(root) if root is not None else Path.cwd()
    problems = []
    for role, model in recipe_models(config):
        if "+" in model:  # mergekit's "model+lora" syntax: check the model part
            model = model.split("+", 1)[0]
        if allow_hub and not _is_local(model):
            continue
        folder = Path(model).expanduser()
        folder = folder if folder.is_absolute() else base_dir / folder
        if not folder.is_dir():
            problems.append(f"{role} path does not exist: {model} (looked at {folder})")
            continue
        if not (folder / "config.json").is_file():
            problems.append(f"{role} folder has no config.json: {folder}")
        weights = ("model.safetensors", "pytorch_model.bin")
        if not any((folder / w).is_file() or (folder / f"{w}.index.json").is_file() for w in weights):
            problems.append(f"{role} folder has no model.safetensors / pytorch_model.bin: {folder}")
    if problems:
        raise FileNotFoundError(f"recipe {path} cannot run yet:\n  " + "\n  ".join(problems))


__all__ = ["EXPERT_PARAMS", "GLOBAL_PARAMS", "check_recipe", "read_recipe", "recipe_models", "render_recipe",
           "write_recipe"]
