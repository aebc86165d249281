"""In-process ``memmcl`` merging of state dicts: the same tensors as ``mergekit-yaml``, without disk.

The evolution driver keeps a :class:`MemmclMerger` (base weights and task vectors computed once) and
calls :meth:`MemmclMerger.merge` with a new ``params`` mapping per candidate.

``params`` has the shape of the ``parameters:`` blocks of a mergekit YAML (and is what
:func:`memmcl_merge.recipes.write_recipe` renders)::

    {
        # global (the YAML's top-level `parameters:`); all optional, defaults shown
        "scale": 1.0, "consensus": False, "sparsify_method": "magnitude",  # or "dare"
        "normalize": False, "seed": 0,
        # optional defaults for every expert, like `weight:` / `density:` in the top-level block
        "weight": 0.2, "density": 1.0,
        # per expert (a model's own `parameters:`), keyed by the expert names of the merger
        "experts": {
            "sst2": {"weight": 0.3, "density": 0.8},
            "sst5": {"weight": [0.1, 0.3, 0.2],                       # per-layer gradient
                     "density": [{"filter": "embed_tokens", "value": 1.0},
                                 {"filter": "lm_head", "value": 1.0},
                                 {"value": 0.7}]},                     # fallback for the rest
        },
    }

Every value is a mergekit ``ParameterSetting``: a scalar, a list of numbers (a gradient: anchors
spread evenly over the layers and linearly interpolated, layer ``i`` of ``N`` at
``t = i / (N - 1)``; embeddings, final norm and ``lm_head`` sit at ``t = 0``), or a list of
``{"filter": substring, "value": setting}`` entries (first entry whose filter is a substring of the
tensor name wins; an entry without filter matches everything). Resolution uses mergekit's own
:func:`mergekit.parameter_resolver.resolve_parameter` and the method's parameter specs, so defaults,
precedence (expert, then global) and type validation are exactly mergekit's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from memmcl_merge.merge_methods.memmcl import (
    MergeShapeError,
    magnitude_ranking,
    memmcl_merge_method,
    merge_tensor,
    work_dtype,
)

StateDict = Mapping[str, torch.Tensor]

GLOBAL_PARAMS = ("scale", "consensus", "sparsify_method", "normalize", "seed")
EXPERT_PARAMS = ("weight", "density")
_LAYER_RE = re.compile(r"(?:^|\.)layers\.(\d+)\.")


# -- parameters -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorParams:
    """Resolved parameters of one tensor (expert order as in the merger)."""

    weights: tuple[float, ...]
    densities: tuple[float, ...]
    scale: float
    consensus: bool
    sparsify_method: str
    normalize: bool
    seed: int


_SETTING_ADAPTER = None


def _parse_setting(value: Any, where: str) -> Any:
    """Validate one value as mergekit's ParameterSetting (the type the YAML loader uses)."""
    global _SETTING_ADAPTER
    from pydantic import TypeAdapter, ValidationError

    if _SETTING_ADAPTER is None:
        from mergekit.config import ParameterSetting

        _SETTING_ADAPTER = TypeAdapter(ParameterSetting)
    if hasattr(value, "tolist"):  # numpy / torch scalars and arrays
        value = value.tolist()
    try:
        return _SETTING_ADAPTER.validate_python(value)
    except ValidationError as error:
        raise ValueError(f"memmcl: invalid setting for {where}: {value!r} ({error})") from None


class ParsedParams:
    """``params`` validated once against a fixed list of expert names."""

    def __init__(self, params: Mapping[str, Any], expert_names: Sequence[str]):
        params = dict(params)
        experts = params.pop("experts", None) or {}
        allowed = set(GLOBAL_PARAMS) | set(EXPERT_PARAMS)
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ValueError(f"memmcl: unknown parameter(s) {unknown}; allowed: {sorted(allowed)} "
                             "and 'experts'")
        unknown_experts = sorted(set(experts) - set(expert_names))
        if unknown_experts:
            raise ValueError(f"memmcl: params for unknown expert(s) {unknown_experts}; "
                             f"experts are {list(expert_names)}")
        self.expert_names = tuple(expert_names)
        self.global_settings = {k: _parse_setting(v, k) for k, v in params.items()}
        self.expert_settings = []
        for name in self.expert_names:
            own = dict(experts.get(name) or {})
            bad = sorted(set(own) - set(EXPERT_PARAMS))
            if bad:
                raise ValueError(f"memmcl: expert {name!r} has parameter(s) {bad}; per-expert "
                                 f"parameters are {list(EXPERT_PARAMS)}")
            self.expert_settings.append({k: _parse_setting(v, f"{name}.{k}") for k, v in own.items()})
        self._specs = {p.name: p for p in memmcl_merge_method.spec.parameters}

    def resolve(self, tensor_name: str, t: float) -> TensorParams:
        from mergekit.parameter_resolver import resolve_parameter

        shared = {
            key: resolve_parameter(self._specs[key], (self.global_settings,), tensor_name=tensor_name, t=t)
            for key in GLOBAL_PARAMS
        }
        per = {key: [] for key in EXPERT_PARAMS}
        for name, own in zip(self.expert_names, self.expert_settings):
            for key in EXPERT_PARAMS:
                per[key].append(resolve_parameter(self._specs[key], (own, self.global_settings),
                                                  tensor_name=tensor_name, t=t, model=name))
        return TensorParams(weights=tuple(per["weight"]), densities=tuple(per["density"]), **shared)


def resolve_tensor_params(params: Mapping[str, Any], expert_names: Sequence[str], tensor_name: str,
                          t: float = 0.0) -> TensorParams:
    """The parameters ``mergekit-yaml`` would use for one tensor at layer position ``t``."""
    return ParsedParams(params, expert_names).resolve(tensor_name, t)


# -- layer positions --------------------------------------------------------------------------------

def _t(index: int, num_layers: int) -> float:
    # mergekit.plan.MergePlanner.plan_slice
    return index / (num_layers - 1) if num_layers > 1 else 1.0


def tensor_positions(names: Iterable[str], num_layers: int | None = None) -> dict[str, float]:
    """Gradient position ``t`` of every tensor name, from the ``layers.<i>.`` part of the name.

    Layer ``i`` of ``N`` gets ``i / (N - 1)`` (``1.0`` when ``N == 1``), anything outside the layers
    (embeddings, final norm, ``lm_head``) gets ``0.0`` - as mergekit plans a ``models:`` merge.
    ``N`` defaults to one more than the largest layer index found.
    """
    names = list(names)
    found = {name: int(m.group(1)) for name in names if (m := _LAYER_RE.search(name))}
    if num_layers is None:
        num_layers = max(found.values(), default=-1) + 1
    return {name: _t(found[name], num_layers) if name in found else 0.0 for name in names}


def positions_from_config(config: Any, names: Iterable[str] | None = None) -> dict[str, float]:
    """Gradient positions from mergekit's architecture definition for a transformers config.

    Falls back to :func:`tensor_positions` (needs ``names``) when mergekit has no definition.
    """
    from mergekit.architecture import ConfiguredModuleArchitecture, arch_info_for_config

    arch = arch_info_for_config(config)
    if arch is None:
        if names is None:
            raise ValueError("mergekit knows no architecture for this config; pass tensor names")
        return tensor_positions(names)
    positions: dict[str, float] = {}

    def put(weights, t):
        for w in weights:
            for n in (w.name, *(w.aliases or ()), *(w.tied_names or ())):
                positions.setdefault(n, t)

    for module in arch.modules.values():
        configured = ConfiguredModuleArchitecture(info=module.architecture, config=config,
                                                  weight_prefix=module.weight_prefix)
        count = configured.num_layers()
        put(configured.pre_weights(), 0.0)
        for i in range(count):
            put(configured.layer_weights(i), _t(i, count))
        put(configured.post_weights(), 0.0)
    if names is not None:
        extra = [n for n in names if n not in positions]
        positions.update(tensor_positions(extra) if extra else {})
    return positions


# -- loading ---------------------------------------------------------------------------------------

def load_state_dict(path: str | os.PathLike, *, role: str = "model",
                    device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """All tensors of a saved model folder (safetensors or pytorch_model.bin, sharded or not).

    ``role`` (``"base"``, ``"expert sst2"``, ...) names the model in the error for a missing path.
    """
    from mergekit.io.lazy_tensor_loader import ShardedTensorIndex

    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"memmcl: {role} model path does not exist: {folder}")
    try:
        index = ShardedTensorIndex.from_disk(str(folder))
    except RuntimeError:
        raise FileNotFoundError(f"memmcl: no model.safetensors or pytorch_model.bin (or index) in the "
                                f"{role} model folder {folder}") from None
    tensors: dict[str, torch.Tensor] = {}
    for shard in index.shards:
        file = os.path.join(index.base_path, shard.filename)
        if index.is_safetensors:
            from safetensors.torch import load_file

            tensors.update(load_file(file, device=str(device)))
        else:
            loaded = torch.load(file, map_location=device, weights_only=True)
            tensors.update(loaded.get("state_dict", loaded))
    return tensors


def compute_deltas(base: StateDict, experts: Mapping[str, StateDict], *,
                   dtype: torch.dtype | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """Task vectors ``expert - base`` of every floating tensor of ``base``, computed in float32
    (float64 stays float64) exactly as the mergekit method does. ``dtype`` stores them smaller
    (e.g. bfloat16) at the price of exact agreement with ``mergekit-yaml``."""
    deltas: dict[str, dict[str, torch.Tensor]] = {}
    for expert_name, sd in experts.items():
        out = {}
        for name, b in base.items():
            if not b.is_floating_point():
                continue
            if name not in sd:
                raise KeyError(f"memmcl: tensor {name} of the base model is missing in expert {expert_name!r}")
            e = sd[name]
            if e.shape != b.shape:
                raise MergeShapeError(f"memmcl: tensor {name} has shape {tuple(e.shape)} in model "
                                      f"{expert_name!r} but {tuple(b.shape)} in the base model")
            w = work_dtype(b.dtype)
            d = e.to(device=b.device, dtype=w) - b.to(w)
            out[name] = d if dtype is None else d.to(dtype)
        deltas[expert_name] = out
    return deltas


# -- merging ---------------------------------------------------------------------------------------

class MemmclMerger:
    """Base weights plus precomputed task vectors; :meth:`merge` gives a merged state dict.

    ``experts`` (state dicts) or ``deltas`` (from :func:`compute_deltas`) give the experts, in the
    order that the YAML lists them (that order seeds the DARE masks). ``positions`` maps tensor names
    to gradient positions (default: :func:`tensor_positions` of the base's names).
    """

    def __init__(self, base: StateDict, experts: Mapping[str, StateDict] | None = None, *,
                 deltas: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
                 positions: Mapping[str, float] | None = None,
                 delta_dtype: torch.dtype | None = None):
        if (experts is None) == (deltas is None):
            raise ValueError("memmcl: give exactly one of experts= (state dicts) or deltas=")
        self.base = dict(base)
        if experts is not None:
            deltas = compute_deltas(self.base, experts, dtype=delta_dtype)
        self.deltas = {name: dict(d) for name, d in deltas.items()}
        self.expert_names = tuple(self.deltas)
        for name, b in self.base.items():
            if not b.is_floating_point():
                continue
            for expert in self.expert_names:
                d = self.deltas[expert].get(name)
                if d is None:
                    raise KeyError(f"memmcl: no delta for tensor {name} of expert {expert!r}")
                if d.shape != b.shape:
                    raise MergeShapeError(f"memmcl: tensor {name} has shape {tuple(d.shape)} in model "
                                          f"{expert!r} but {tuple(b.shape)} in the base model")
        self.positions = dict(positions) if positions is not None else tensor_positions(self.base)
        # magnitude ranking per (expert, tensor), made the first time a candidate sparsifies that
        # tensor by magnitude: later candidates take their top-k from it without a selection pass
        self._rankings: dict[tuple[str, str], torch.Tensor] = {}

    def _ranking(self, name: str):
        def lookup(i: int) -> torch.Tensor:
            key = (self.expert_names[i], name)
            if key not in self._rankings:
                self._rankings[key] = magnitude_ranking(self.deltas[key[0]][name])
            return self._rankings[key]
        return lookup

    @classmethod
    def from_paths(cls, base_path: str | os.PathLike,
                   expert_paths: Mapping[str, str | os.PathLike], *,
                   device: str | torch.device = "cpu",
                   delta_dtype: torch.dtype | None = None) -> MemmclMerger:
        """Load saved model folders; gradient positions come from the base's ``config.json`` via
        mergekit's architecture definitions. Experts are loaded one at a time."""
        base = load_state_dict(base_path, role="base", device=device)
        for name, path in expert_paths.items():
            if not Path(path).exists():
                raise FileNotFoundError(f"memmcl: expert {name!r} model path does not exist: {path}")
        deltas = {}
        for name, path in expert_paths.items():
            sd = load_state_dict(path, role=f"expert {name!r}", device=device)
            deltas.update(compute_deltas(base, {name: sd}, dtype=delta_dtype))
            del sd
        positions = None
        if (Path(base_path) / "config.json").is_file():
            from transformers import AutoConfig

            positions = positions_from_config(AutoConfig.from_pretrained(str(base_path)), names=base)
        return cls(base, deltas=deltas, positions=positions)

    def parse(self, params: Mapping[str, Any]) -> ParsedParams:
        return ParsedParams(params, self.expert_names)

    def merge(self, params: Mapping[str, Any] | ParsedParams, *,
              out_dtype: torch.dtype | None = None,
              names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Merged tensors (new tensors; base and deltas are untouched). ``names`` limits the output
        to some tensors; non-floating tensors are copied from the base."""
        parsed = params if isinstance(params, ParsedParams) else self.parse(params)
        out: dict[str, torch.Tensor] = {}
        for name in (self.base if names is None else names):
            base = self.base[name]
            if not base.is_floating_point():
                out[name] = base.clone()
                continue
            p = parsed.resolve(name, self.positions.get(name, 0.0))
            merged = merge_tensor(
                base, [self.deltas[e][name] for e in self.expert_names], p.weights, p.densities,
                scale=p.scale, consensus=p.consensus, sparsify_method=p.sparsify_method,
                normalize=p.normalize, seed=p.seed, name=name, labels=self.expert_names,
                ranking=self._ranking(name))
            out[name] = merged if out_dtype is None else merged.to(out_dtype)
        return out


def merge_state_dicts_memmcl(base: StateDict, experts: Mapping[str, StateDict],
                             params: Mapping[str, Any], *, deltas_precomputed: bool = False,
                             positions: Mapping[str, float] | None = None,
                             out_dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """One-shot in-process merge: ``experts`` maps expert names to state dicts (or, with
    ``deltas_precomputed=True``, to their task vectors from :func:`compute_deltas`). For repeated
    merges keep a :class:`MemmclMerger` instead, which computes the task vectors once."""
    merger = (MemmclMerger(base, deltas=experts, positions=positions) if deltas_precomputed
              else MemmclMerger(base, experts, positions=positions))
    return merger.merge(params, out_dtype=out_dtype)


__all__ = [
    "EXPERT_PARAMS",
    "GLOBAL_PARAMS",
    "MemmclMerger",
    "ParsedParams",
    "TensorParams",
    "compute_deltas",
    "load_state_dict",
    "merge_state_dicts_memmcl",
    "positions_from_config",
    "resolve_tensor_params",
    "tensor_positions",
]
