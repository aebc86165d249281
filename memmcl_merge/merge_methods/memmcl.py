"""The ``memmcl`` merge method: weighted, sparsified task arithmetic with optional sign consensus.

For every tensor::

    merged = base + scale * sum_i weight_i * sparsify(expert_i - base, density_i)

* ``sparsify_method: magnitude`` keeps the ``k = max(1, int(density * numel))`` entries of largest
  magnitude (TIES-style top-k); ties at the threshold are broken by lower flat index, so the result
  is exact-k and does not depend on the device or on the sort algorithm.
* ``sparsify_method: dare`` keeps every entry with probability ``density`` and rescales the kept ones
  by ``1 / density`` (DARE). The draw for expert ``i`` of tensor ``name`` comes from a generator
  seeded with ``tensor_seed(seed, name, i)``: the same YAML always gives the same model, and the
  in-process path (:mod:`memmcl_merge.merge_methods.inprocess`) draws exactly the same masks.
* ``density: 1.0`` means no sparsification; ``density: 0.0`` drops the expert for that tensor.
* ``consensus: true`` applies mergekit's TIES sign election
  (:func:`mergekit.merge_methods.generalized_task_arithmetic.get_mask`, method ``sum``) to the
  weighted, sparsified deltas; entries that disagree with the elected sign are dropped.
* ``normalize: true`` divides the mixed delta by the sum of the weights (with consensus: per entry,
  by the sum of the weights of the experts that agree with the elected sign, as mergekit's TIES).

Arithmetic is done in float32 (float64 inputs stay float64); the result has the base's dtype.
:func:`merge_tensor` is the pure-torch core shared by the mergekit method and the evolution driver.
"""

import hashlib
import logging
import math
from collections.abc import Hashable, Sequence
from typing import Literal

import torch
from mergekit.merge_methods.base import (
    BasePolicy,
    FunctionalGroupMergeMethod,
    InputContract,
    PerNonBase,
    TensorGroup,
)
from mergekit.merge_methods.easy_define import merge_method
from mergekit.merge_methods.generalized_task_arithmetic import get_mask

METHOD_NAME = "memmcl"
SPARSIFY_METHODS = ("magnitude", "dare")
SparsifyMethod = Literal["magnitude", "dare"]


class MergeShapeError(ValueError):
    """An expert tensor does not have the base tensor's shape."""


def tensor_seed(seed: int, tensor_name: str, expert_index: int) -> int:
    """A stable 63-bit seed for the DARE mask of one expert on one tensor (independent of PYTHONHASHSEED)."""
    digest = hashlib.blake2b(f"{int(seed)}\x00{tensor_name}\x00{int(expert_index)}".encode(),
                             digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the arithmetic runs in: float64 stays float64, everything else is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_density(density: float, label: str, tensor_name: str | None = None) -> None:
    """Raise a ValueError naming the model when ``density`` is not in [0, 1]."""
    if not (0.0 <= density <= 1.0):  # also rejects NaN
        where = f" (tensor {tensor_name})" if tensor_name else ""
        raise ValueError(f"memmcl: density for model {label!r} must be in [0, 1], got {density!r}{where}")


def magnitude_mask(delta: torch.Tensor, density: float) -> torch.Tensor:
    """Boolean mask of the ``max(1, int(density * numel))`` largest-magnitude entries (0 < density < 1).

    Selection is by threshold (``kthvalue``) plus lowest-flat-index tie breaking, which makes the
    kept set exact-k and identical on every device.
    """
    flat = delta.reshape(-1).abs()
    n = flat.numel()
    k = max(1, int(density * n))
    if k >= n:
        return torch.ones_like(delta, dtype=torch.bool)
    # the (n - k)-th smallest magnitude: everything strictly above it is kept
    threshold = torch.kthvalue(flat, n - k).values
    keep = flat > threshold
    missing = k - int(torch.count_nonzero(keep))
    if missing > 0:
        # entries equal to the threshold straddle the cut: keep the lowest flat indices among them
        ties = flat == threshold
        ties &= torch.cumsum(ties, 0) <= missing
        keep |= ties
    return keep.reshape(delta.shape)


def magnitude_ranking(delta: torch.Tensor) -> torch.Tensor:
    """Flat indices of the non-zero entries of ``delta``, largest magnitude first, ties by lower index.

    Its first ``k`` entries are exactly the non-zero part of :func:`magnitude_mask`'s top-k, so a
    caller that merges many candidates from one task vector (the evolution driver) ranks it once
    and then sparsifies at any density without a selection pass (see :func:`sparsify_delta`).
    """
    flat = delta.reshape(-1)
    nonzero = torch.nonzero(flat).reshape(-1)
    order = flat[nonzero].abs().sort(descending=True, stable=True).indices
    return nonzero[order]


def dare_mask(delta: torch.Tensor, density: float, seed: int) -> torch.Tensor:
    """Boolean Bernoulli(density) keep-mask drawn from a generator seeded with ``seed``."""
    generator = torch.Generator(device=delta.device)
    generator.manual_seed(seed)
    draw = torch.rand(delta.shape, generator=generator, device=delta.device, dtype=torch.float32)
    return draw < density


def sparsify_delta(delta: torch.Tensor, density: float, method: str, *, seed: int = 0,
                   ranking: torch.Tensor | None = None) -> torch.Tensor:
    """Sparsify one task vector. ``density >= 1`` returns ``delta`` itself (no copy).

    ``ranking`` (magnitude method): :func:`magnitude_ranking` of ``delta``; the result is the same
    tensor, computed without a selection pass. When top-k covers every non-zero entry (task
    vectors of experts saved in bf16 are mostly exact zeros), ``delta`` itself is the answer.
    """
    if density >= 1.0:
        return delta
    if density <= 0.0 or delta.numel() == 0:
        return torch.zeros_like(delta)
    if method == "magnitude":
        if ranking is None:
            return delta * magnitude_mask(delta, density)
        k = max(1, int(density * delta.numel()))
        if k >= ranking.numel():
            return delta
        keep = torch.zeros(delta.numel(), dtype=torch.bool, device=delta.device)
        keep[ranking[:k]] = True
        return delta * keep.reshape(delta.shape)
    if method == "dare":
        return delta * dare_mask(delta, density, seed) * (1.0 / density)
    raise ValueError(f"memmcl: unknown sparsify_method {method!r}, expected one of {SPARSIFY_METHODS}")


def merge_tensor(
    base: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    weights: Sequence[float],
    densities: Sequence[float],
    *,
    scale: float = 1.0,
    consensus: bool = False,
    sparsify_method: str = "magnitude",
    normalize: bool = False,
    seed: int = 0,
    name: str = "",
    labels: Sequence[str] | None = None,
    ranking=None,
) -> torch.Tensor:
    """Merge one tensor from precomputed task vectors ``deltas[i] = expert_i - base``.

    ``name`` is the tensor's name: it seeds the DARE masks (together with ``seed`` and the expert's
    position in ``deltas``) and labels errors; ``labels`` name the experts in error messages.
    ``ranking(i)``, if given, returns :func:`magnitude_ranking` of ``deltas[i]`` (a cache kept by
    the caller); it is only called for magnitude sparsification with 0 < density < 1.
    Experts with weight 0 contribute nothing and are skipped. Returns a new tensor of ``base``'s
    shape and dtype; the inputs are not modified.
    """
    n = len(deltas)
    if len(weights) != n or len(densities) != n:
        raise ValueError(f"memmcl: {n} deltas but {len(weights)} weights and {len(densities)} densities"
                         + (f" for tensor {name}" if name else ""))
    if labels is None:
        labels = [f"expert[{i}]" for i in range(n)]
    if sparsify_method not in SPARSIFY_METHODS:
        raise ValueError(f"memmcl: unknown sparsify_method {sparsify_method!r}, "
                         f"expected one of {SPARSIFY_METHODS}")
    for i, (delta, density) in enumerate(zip(deltas, densities)):
        check_density(float(density), str(labels[i]), name or None)
        if delta.shape != base.shape:
            raise MergeShapeError(
                f"memmcl: tensor {name or '<unnamed>'} has shape {tuple(delta.shape)} in model "
                f"{labels[i]!r} but {tuple(base.shape)} in the base model")

    dtype = work_dtype(base.dtype)
    base_w = base.to(dtype)
    active = [i for i in range(n) if float(weights[i]) != 0.0]
    if not active:
        return base_w.to(base.dtype)

    def sparse(i: int) -> torch.Tensor:
        delta = deltas[i].to(device=base.device, dtype=dtype)
        density = float(densities[i])
        ranked = (ranking(i) if ranking is not None and sparsify_method == "magnitude"
                  and 0.0 < density < 1.0 else None)
        return sparsify_delta(delta, density, sparsify_method, ranking=ranked,
                              seed=tensor_seed(seed, name, i) if sparsify_method == "dare" else 0)

    if consensus:
        stacked = torch.empty((len(active), *base.shape), dtype=dtype, device=base.device)
        for row, i in enumerate(active):
            torch.mul(sparse(i), float(weights[i]), out=stacked[row])
        mask = get_mask(stacked, method="sum", mask_dtype=dtype)
        mixed = (stacked * mask).sum(dim=0)
        if normalize:
            w = torch.tensor([float(weights[i]) for i in active], dtype=dtype, device=base.device)
            w = w.reshape(-1, *([1] * base.dim()))
            divisor = (w * mask).sum(dim=0)
            divisor[divisor == 0] = 1
            mixed /= divisor
    else:
        mixed = torch.zeros_like(base_w)
        for i in active:
            mixed.add_(sparse(i), alpha=float(weights[i]))
        if normalize:
            total = math.fsum(float(weights[i]) for i in active)
            if abs(total) >= 1e-8:
                mixed /= total
    if scale != 1.0:
        mixed *= scale
    return (base_w + mixed).to(base.dtype)


def _entry_label(entry_id: Hashable) -> str:
    return str(entry_id)


def _memmcl_kernel(
    group: TensorGroup,
    weight: PerNonBase[float],
    density: PerNonBase[float] = 1.0,
    scale: float = 1.0,
    consensus: bool = False,
    sparsify_method: SparsifyMethod = "magnitude",
    normalize: bool = False,
    seed: int = 0,
) -> torch.Tensor:
    # mergekit has already checked that all inputs share one shape (see also _preflight_shapes)
    base = group.base.tensor
    experts = group.non_base
    name = group.metadata.name or ""
    labels = [_entry_label(e.id) for e in experts]
    dtype = work_dtype(base.dtype)
    base_w = base.to(dtype)
    deltas = [e.tensor.to(dtype) - base_w for e in experts]
    return merge_tensor(
        base, deltas, [weight[e.id] for e in experts], [density[e.id] for e in experts],
        scale=scale, consensus=consensus, sparsify_method=sparsify_method, normalize=normalize,
        seed=seed, name=name, labels=labels)


class MemmclMergeMethod(FunctionalGroupMergeMethod):
    """The method object mergekit sees. On top of the kernel it checks, once per set of input
    models, that every expert tensor has the base tensor's shape, so that a mismatch fails at
    planning time with the tensor and both model paths in the message (mergekit's own check only
    lists the shapes)."""

    def __init__(self, spec, implementation):
        super().__init__(spec, implementation)
        self._checked: set = set()

    def validate_inputs(self, input_ids, base_id=None, *, group_name=None) -> None:
        super().validate_inputs(input_ids, base_id, group_name=group_name)
        key = (tuple(input_ids), base_id)
        if base_id is None or key in self._checked:
            return
        self._checked.add(key)
        _preflight_shapes([i for i in input_ids if i != base_id], base_id)


def _safetensors_shapes(model) -> dict | None:
    """Tensor name -> shape from the safetensors headers of a local mergekit ModelReference."""
    import os

    from mergekit.common import ModelReference
    from safetensors import safe_open

    if not isinstance(model, ModelReference) or model.lora is not None:
        return None
    path = model.model.path
    if not os.path.isdir(path):
        return None
    from mergekit.io.lazy_tensor_loader import ShardedTensorIndex

    index = ShardedTensorIndex.from_disk(path)
    if not index.is_safetensors:
        return None
    shapes = {}
    for shard in index.shards:
        with safe_open(os.path.join(index.base_path, shard.filename), framework="pt") as f:
            for key in shard.contained_keys:
                shapes[key] = tuple(f.get_slice(key).get_shape())
    return shapes


def _shapes_or_none(model) -> dict | None:
    try:
        return _safetensors_shapes(model)
    except Exception as error:  # noqa: BLE001 - best effort; mergekit reports unreadable models itself
        logging.getLogger(__name__).debug("memmcl: no shape preflight for %s: %r", model, error)
        return None


def _preflight_shapes(experts, base) -> None:
    """Best effort: compare header shapes of local safetensors models; any other problem is left
    to mergekit (it reports missing files itself)."""
    base_shapes = _shapes_or_none(base)
    if not base_shapes:
        return
    for model in experts:
        for key, shape in (_shapes_or_none(model) or {}).items():
            if key in base_shapes and base_shapes[key] != shape:
                raise MergeShapeError(
                    f"memmcl: tensor {key} has shape {shape} in model {str(model)!r} "
                    f"but {base_shapes[key]} in base model {str(base)!r}")


_generated = merge_method(
    _memmcl_kernel,
    name=METHOD_NAME,
    pretty_name="MEM-MCL",
    contract=InputContract(base=BasePolicy.REQUIRED),
)
#: The method object (register it with ``mergekit.merge_methods.registry.register``).
memmcl_merge_method = MemmclMergeMethod(_generated.spec, _generated.implementation)
del _generated

__all__ = [
    "METHOD_NAME",
    "SPARSIFY_METHODS",
    "MemmclMergeMethod",
    "MergeShapeError",
    "check_density",
    "dare_mask",
    "magnitude_mask",
    "magnitude_ranking",
    "memmcl_merge_method",
    "merge_tensor",
    "sparsify_delta",
    "tensor_seed",
    "work_dtype",
]
