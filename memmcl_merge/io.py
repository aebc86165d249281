"""Small atomic-write helpers: every output file is either complete or absent."""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_text(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file a normal mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def locked_update(path: Path, change, empty: Any) -> Any:
    """Re-read the JSON file at ``path`` (a copy of ``empty`` when there is none) under a lock, apply
    ``change(data)``, write it atomically and return it: processes that each save their own part of
    one file (parallel lanes on one GPU, a step beside a long training) never drop each other's. The
    lock is taken on the file's folder, so no lock file is left behind in it."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = read_json(path) if path.is_file() else copy.deepcopy(empty)
        change(data)
        write_json(path, data)
    finally:
        os.close(fd)  # releases the lock
    return data


def fresh_tmp_dir(final: Path) -> Path:
    """Where to write a new ``final`` folder before ``replace_dir`` puts it in place:
    ``.<name>.tmp-<pid>`` beside it. Such folders left half-written by killed runs are removed first."""
    import shutil

    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return final.parent / f".{final.name}.tmp-{os.getpid()}"


def replace_dir(tmp: Path, final: Path) -> Path:
    """Put a fully written folder in place of ``final`` (removing an older one): readers see the old
    folder or the new one, never a half-written one."""
    import shutil

    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
    return final


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# The distributions whose versions decide a trained model or a score: a rebuild under other versions
# can differ (benchmarks/RESULTS.md, session 39), so experts and benchmark rows record them.
DECIDING_PACKAGES = ("torch", "transformers", "trl", "peft", "accelerate", "mergekit", "lm-eval", "datasets",
                     "cma", "memmcl-merge")


def package_versions(names=DECIDING_PACKAGES) -> dict[str, str]:
    """Installed version of each named distribution; those not installed are left out."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in names:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out
