"""Merge methods registered into mergekit.

Importing this package registers them (idempotently). Plain ``mergekit-yaml`` finds them through the
``memmcl_merge.pth`` start-up hook (:mod:`memmcl_merge._mergekit_hook`) without importing anything
heavy at start-up.
"""

from memmcl_merge.merge_methods.memmcl import (
    METHOD_NAME,
    SPARSIFY_METHODS,
    MergeShapeError,
    memmcl_merge_method,
    merge_tensor,
    tensor_seed,
)

#: Every method this package provides, in registration order.
METHODS = (memmcl_merge_method,)


def register_methods() -> list:
    """Register this package's methods with mergekit; registering twice is a no-op.

    Returns the names added by this call.
    """
    from memmcl_merge._mergekit_hook import register_method

    return [m.spec.name for m in METHODS if register_method(m)]


_INPROCESS = ("MemmclMerger", "ParsedParams", "TensorParams", "merge_state_dicts_memmcl", "load_state_dict",
              "tensor_positions", "positions_from_config", "compute_deltas", "resolve_tensor_params")


def __getattr__(name: str):
    # The in-process path pulls in mergekit's config/parameter resolver; load it on first use.
    if name in _INPROCESS:
        from memmcl_merge.merge_methods import inprocess

        return getattr(inprocess, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


register_methods()

__all__ = [
    "METHODS",
    "METHOD_NAME",
    "SPARSIFY_METHODS",
    "MemmclMerger",
    "MergeShapeError",
    "ParsedParams",
    "TensorParams",
    "compute_deltas",
    "load_state_dict",
    "memmcl_merge_method",
    "merge_state_dicts_memmcl",
    "merge_tensor",
    "positions_from_config",
    "register_methods",
    "resolve_tensor_params",
    "tensor_positions",
    "tensor_seed",
]
