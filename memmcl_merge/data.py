"""Data sources: a local folder in the shared layout, a Hugging Face dataset, or the embedded corpus.

Every source yields plain dicts in one schema (``text``, ``label`` | ``triplets``, and ``aspect`` or
``target`` where the task needs them), checked against the task registry as they are read, so bad
data is reported with file, line and reason before any model sees it.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from .tasks import TaskSpec, get_task

SPLITS = ("train", "dev", "test", "test_500")
DATA_ENV = "MEMMCL_DATA"
EMBEDDED = "embedded"


class DataError(ValueError):
    """Bad or missing data; the message names the file, the line and the reason."""


@dataclass(frozen=True)
class LocalSource:
    """``<root>/<task>/<split>.jsonl``, the layout of ``../shared/data`` and of the embedded corpus."""

    root: Path

    def path(self, task: str, split: str) -> Path:
        return Path(self.root) / task / f"{split}.jsonl"

    def load(self, spec: TaskSpec, split: str) -> list[dict]:
        path = self.path(spec.name, split)
        if not path.is_file():
            have = sorted(p.stem for p in path.parent.glob("*.jsonl")) if path.parent.is_dir() else []
            hint = f" (splits there: {', '.join(have)})" if have else f" (no folder {path.parent})"
            raise DataError(f"{path}: no {split!r} split for task {spec.name}{hint}")
        docs = []
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
                reason = spec.check_doc(doc)
                if reason:
                    raise DataError(f"{path}:{lineno}: {reason}")
                docs.append(doc)
        if not docs:
            raise DataError(f"{path}: file is empty")
        return docs


@dataclass(frozen=True)
class HFSource:
    """A Hugging Face dataset: a hub id (``load_dataset``) or a folder written by ``save_to_disk``.

    ``splits`` maps our split names to the dataset's (``{"dev": "validation"}``); ``columns`` maps
    our field names to its columns (``{"text": "sentence"}``). Integer labels are turned into names
    through the dataset's ``ClassLabel`` feature, or ``label_names`` when given.
    """

    dataset: str
    name: str | None = None
    splits: Mapping[str, str] = field(default_factory=dict)
    columns: Mapping[str, str] = field(default_factory=dict)
    label_names: Sequence[str] | None = None

    def _open(self):
        import datasets

        if Path(self.dataset).is_dir():
            return datasets.load_from_disk(self.dataset)
        return datasets.load_dataset(self.dataset, self.name)

    def load(self, spec: TaskSpec, split: str) -> list[dict]:
        ds = self._open()
        hf_split = self.splits.get(split, split)
        if hf_split not in ds:
            raise DataError(f"{self.dataset}: no split {hf_split!r} (has {', '.join(ds)}) for task {spec.name}")
        table = ds[hf_split]
        names = list(self.label_names) if self.label_names else None
        label_col = self.columns.get("label", "label")
        feat = table.features.get(label_col)
        if names is None and feat is not None and hasattr(feat, "names"):
            names = list(feat.names)
        docs = []
        for i, row in enumerate(table):
            doc = {ours: row[theirs] for ours, theirs in self.columns.items() if theirs in row}
            for key in spec.required_fields:
                if key not in doc and key in row:
                    doc[key] = row[key]
            if "label" in doc and isinstance(doc["label"], int) and names:
                doc["label"] = names[doc["label"]]
            doc.setdefault("id", f"{spec.name}-{split}-{i}")
            reason = spec.check_doc(doc)
            if reason:
                raise DataError(f"{self.dataset}[{hf_split}] row {i}: {reason}")
            docs.append(doc)
        if not docs:
            raise DataError(f"{self.dataset}[{hf_split}]: split is empty")
        return docs


def resolve_source(ref: str | os.PathLike | LocalSource | HFSource | None = None):
    """``None`` -> ``$MEMMCL_DATA`` or the embedded corpus; ``"embedded"``; a folder; ``hf:<id>``."""
    if isinstance(ref, (LocalSource, HFSource)):
        return ref
    ref = str(ref) if ref is not None else os.environ.get(DATA_ENV, EMBEDDED)
    if ref == EMBEDDED:
        from .corpus import ensure_corpus

        return LocalSource(ensure_corpus())
    if ref.startswith("hf:"):
        return HFSource(ref[3:])
    path = Path(ref).expanduser()
    if not path.is_dir():
        raise DataError(
            f"data source {ref!r} is not a folder; use a folder in the <task>/<split>.jsonl layout, "
            f"'hf:<dataset id>', or {EMBEDDED!r}"
        )
    return LocalSource(path.resolve())


Sampling = Literal["balanced", "proportional", "sqrt"]  # the one list of sampling modes (config, scoring)
SAMPLINGS = get_args(Sampling)


def load_docs(task: str | TaskSpec, split: str, source=None, limit: int | None = None,
              seed: int = 0, sampling: Sampling = "balanced") -> list[dict]:
    """Docs of one task and split. ``limit`` keeps a seeded, label-stratified sample of that size
    (``sampling``: see :func:`sample_docs`)."""
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    docs = resolve_source(source).load(spec, split)
    return sample_docs(spec, docs, limit, seed, sampling) if limit else docs


def sample_docs(spec: TaskSpec, docs: Sequence[dict], n: int, seed: int = 0,
                sampling: Sampling = "balanced") -> list[dict]:
    """A seeded sample of ``n`` docs that keeps every label present when it can, shuffled.

    ``balanced``: round-robin over labels, so each label gets about n / labels docs (a small training
    or weak set is not all one class). ``proportional``: each label gets its share of the split
    (largest remainders), at least one doc per label when n allows, so a score on the sample estimates
    the score on the split; a balanced sample over-rewards a model biased to a minority class.
    ``sqrt``: shares in proportion to the square root of each label's count, between the two (for
    training rows: the label priors of the split, damped).
    """
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    if n >= len(docs):
        return list(docs)
    rng = random.Random(f"{spec.name}:{seed}")
    by_label: dict[str, list[dict]] = {}
    for d in docs:
        key = "triplets" if spec.is_generative else d["label"]
        by_label.setdefault(key, []).append(d)
    pools = [rng.sample(v, len(v)) for _, v in sorted(by_label.items())]
    out: list[dict] = []
    if sampling in ("proportional", "sqrt"):
        sizes = [len(p) for p in pools]
        # integer weights keep the proportional quotas exact; sqrt's to a millionth
        weights = sizes if sampling == "proportional" else [round(math.sqrt(s) * 10**6) for s in sizes]
        for pool, k in zip(pools, _proportional_quotas(sizes, n, weights)):
            out.extend(pool[:k])
    else:
        while len(out) < n:
            for pool in pools:
                if pool and len(out) < n:
                    out.append(pool.pop())
    rng.shuffle(out)
    return out


def _proportional_quotas(sizes: Sequence[int], n: int, weights: Sequence[int] | None = None) -> list[int]:
    """Split ``n`` over groups of these sizes in proportion to ``weights`` (default: the sizes; largest
    remainders), none above its size, giving every group one first when ``n`` is at least the number
    of groups."""
    weights = sizes if weights is None else weights
    total = sum(weights)
    floor_one = n >= len(sizes)
    quotas = [min(s, max(int(floor_one), n * w // total)) for s, w in zip(sizes, weights)]
    # largest remainders first; ties to the larger group
    order = sorted(range(len(sizes)), key=lambda i: (-(n * weights[i] % total), -sizes[i], i))
    while sum(quotas) < n:
        for i in order:
            if sum(quotas) < n and quotas[i] < sizes[i]:
                quotas[i] += 1
    while sum(quotas) > n:  # the floors of one overshot: take from the largest quota
        quotas[max(range(len(quotas)), key=lambda i: quotas[i])] -= 1
    return quotas


def demos_for(spec: TaskSpec, pool: Sequence[dict], k: int, seed: int, exclude_text: str = "") -> list[dict]:
    """``k`` in-context demonstrations drawn from ``pool`` (a training split), one per label first."""
    if k <= 0:
        return []
    candidates = [d for d in pool if d["text"] != exclude_text]
    return sample_docs(spec, candidates, k, seed)


def write_jsonl(path: Path, docs: Sequence[Mapping]) -> None:
    """Write atomically: a reader never sees half a file."""
    from .io import write_text

    write_text(Path(path), "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
