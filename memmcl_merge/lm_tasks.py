"""The lm-eval side of the task registry: dataset loading, scoring, and the YAML task folder.

lm-eval reads ``evals/*.yaml``; each YAML names ``utils.load_dataset`` (a shim onto
:func:`load_dataset` here) as its ``custom_dataset``, so where the data lives, which split is scored,
a weak-set sample size and the number of in-context demonstrations are all chosen at run time, from
``--metadata '{"data": ..., "split": ...}'`` or environment variables, without editing a YAML.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .data import Sampling, demos_for, load_docs, resolve_source
from .tasks import GROUPS, TASKS, TaskSpec, get_task, parse_triplets

SPLIT_ENV = "MEMMCL_EVAL_SPLIT"
DEMOS_ENV = "MEMMCL_NUM_DEMOS"
ALL_GROUP = "sentieval"  # group names must not match 'sentiment_*' (lm-eval duplicate-task error)
MAX_GEN_TOKS = 64  # covers 99% of the real ASTE test answers (SmolLM2 tokens; median 14, max 170)


def group_name(group: str) -> str:
    return f"{ALL_GROUP}_{group.lower()}"


# -- dataset -------------------------------------------------------------------------------------
def build_rows(spec: TaskSpec, docs, demo_pool=(), num_demos: int = 0, seed: int = 0) -> list[dict]:
    """Docs -> rows with the finished prompt, so lm-eval and the SFT data share one prompt."""
    rows = []
    for i, doc in enumerate(docs):
        demos = demos_for(spec, demo_pool, num_demos, seed + i, exclude_text=doc["text"])
        row = {"id": str(doc.get("id", i)), "prompt": spec.prompt(doc, demos), "answer": spec.answer(doc),
               "metric": spec.metric}
        if spec.is_generative:
            row["gold_triplets"] = json.dumps([[*t] for t in doc["triplets"]])
        else:
            row["choices"] = list(spec.labels)
            row["gold"] = spec.labels.index(doc["label"])
        rows.append(row)
    return rows


def load_dataset(task: str, data: str | None = None, split: str | None = None, limit: int | None = None,
                 seed: int = 0, num_demos: int | None = None, sampling: Sampling = "proportional",
                 **_lm_eval_metadata):
    """lm-eval ``custom_dataset`` hook: a DatasetDict with one ``test`` split of prompt rows
    (``limit``: a seeded sample, each label its share of the split unless ``sampling`` is balanced)."""
    import datasets

    spec = get_task(task)
    source = resolve_source(data)
    split = split or os.environ.get(SPLIT_ENV, "test")
    k = int(num_demos if num_demos is not None else os.environ.get(DEMOS_ENV, "0"))
    docs = load_docs(spec, split, source, limit=int(limit) if limit else None, seed=int(seed),
                     sampling=sampling)
    # Demonstrations always come from the training split, never from the split being scored.
    pool = load_docs(spec, "train", source) if k > 0 else ()
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(build_rows(spec, docs, pool, k, seed))})


# -- scoring -------------------------------------------------------------------------------------
def process_classification(doc, results):
    lls = np.array([r[0] for r in results], dtype=np.float64)
    pred, gold = int(np.argmax(lls)), int(doc["gold"])
    probs = np.exp(lls - lls.max())
    probs /= probs.sum()
    return {"acc": float(pred == gold), "macro_f1": (gold, pred), "score": (gold, pred),
            "p_gold": (gold, float(probs[gold])), "brier": (gold, probs.tolist())}


def process_triplets(doc, results):
    pred = set(parse_triplets(results[0]))
    gold = {tuple(" ".join(x.split()).lower() for x in t) for t in json.loads(doc["gold_triplets"])}
    return {"micro_f1": (pred, gold), "score": (pred, gold), "partial_f1": (pred, gold)}


def accuracy(items) -> float:
    return float(np.mean([g == p for g, p in items])) if items else 0.0


def macro_f1(items) -> float:
    """Macro-F1 over the labels seen in gold or predictions (sklearn's default label set)."""
    labels = sorted({g for g, _ in items} | {p for _, p in items})
    f1s = []
    for lab in labels:
        tp = sum(1 for g, p in items if g == lab and p == lab)
        fp = sum(1 for g, p in items if g != lab and p == lab)
        fn = sum(1 for g, p in items if g == lab and p != lab)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(f1s)) if f1s else 0.0


def micro_f1(items) -> float:
    """Exact-match triplet micro-F1 over the whole corpus (one item per sentence)."""
    tp = sum(len(p & g) for p, g in items)
    n_pred = sum(len(p) for p, _ in items)
    n_gold = sum(len(g) for _, g in items)
    return 2 * tp / (n_pred + n_gold) if tp else 0.0


# The parts of a triplet (aspect, opinion, polarity) a model can get right apart from the whole one.
TRIPLET_PARTS = ((0,), (1,), (0, 2), (0, 1, 2))


def partial_f1(items) -> float:
    """Partial credit for triplets: the mean micro-F1 of the aspect terms, the opinion terms, the
    (aspect, polarity) pairs and the whole triplets. Exact-match F1 moves only when a whole triplet
    comes right; this also moves when a merge finds an aspect or its polarity (a smoother fitness)."""
    return float(np.mean([micro_f1([({tuple(t[i] for i in part) for t in p}, {tuple(t[i] for i in part) for t in g})
                                    for p, g in items]) for part in TRIPLET_PARTS]))


def balanced_p_gold(items) -> float:
    """Mean probability of the gold label, averaged per class: a smooth stand-in for macro-F1."""
    by_class: dict[int, list[float]] = {}
    for g, p in items:
        by_class.setdefault(g, []).append(p)
    return float(np.mean([np.mean(v) for v in by_class.values()])) if by_class else 0.0


def brier(items) -> float:
    return float(np.mean([sum((p - (i == g)) ** 2 for i, p in enumerate(ps)) for g, ps in items]))


SCORE_AGGREGATION = {"accuracy": "accuracy", "macro_f1": "macro_f1", "micro_f1": "micro_f1"}


# -- the YAML folder -----------------------------------------------------------------------------
def task_yaml(spec: TaskSpec) -> str:
    fn = "!function utils."
    head = [
        "# Generated by `memmcl tasks write-yaml` from memmcl_merge/tasks.py; edit there, not here.",
        f"task: {spec.lm_eval_name}",
        f"custom_dataset: {fn}load_dataset",
        "dataset_kwargs:",
        f"  task: {spec.name}",
        "test_split: test",
        "doc_to_text: prompt",
        "target_delimiter: \" \"",
    ]
    score = f"  - metric: score\n    aggregation: {fn}{SCORE_AGGREGATION[spec.metric]}\n    higher_is_better: true"
    if spec.is_generative:
        body = [
            "output_type: generate_until",
            "doc_to_target: answer",
            "generation_kwargs:",
            "  until: [\"\\n\"]",
            "  do_sample: false",
            f"  max_gen_toks: {MAX_GEN_TOKS}",
            f"process_results: {fn}process_triplets",
            "metric_list:",
            score,
            f"  - metric: micro_f1\n    aggregation: {fn}micro_f1\n    higher_is_better: true",
            f"  - metric: partial_f1\n    aggregation: {fn}partial_f1\n    higher_is_better: true",
        ]
    else:
        body = [
            "output_type: multiple_choice",
            "doc_to_choice: choices",
            "doc_to_target: gold",
            f"process_results: {fn}process_classification",
            "metric_list:",
            score,
            "  - metric: acc\n    aggregation: mean\n    higher_is_better: true",
            f"  - metric: macro_f1\n    aggregation: {fn}macro_f1\n    higher_is_better: true",
            f"  - metric: p_gold\n    aggregation: {fn}balanced_p_gold\n    higher_is_better: true",
            f"  - metric: brier\n    aggregation: {fn}brier\n    higher_is_better: false",
        ]
    tail = ["metadata:", "  version: 1.0", ""]
    return "\n".join(head + body + tail)


def group_yaml(name: str, members: list[str]) -> str:
    lines = ["# Generated by `memmcl tasks write-yaml`; the group score is the mean of its members' scores.",
             f"group: {name}", "task:"] + [f"  - {m}" for m in members] + [
        "aggregate_metric_list:", "  - metric: score", "    aggregation: mean", "    weight_by_size: false",
        "metadata:", "  version: 1.0", ""]
    return "\n".join(lines)


UTILS_PY = '''"""lm-eval hooks for the sentiment_* tasks: thin re-exports of memmcl_merge.lm_tasks."""

from memmcl_merge.lm_tasks import (  # noqa: F401
    accuracy,
    balanced_p_gold,
    brier,
    load_dataset,
    macro_f1,
    micro_f1,
    partial_f1,
    process_classification,
    process_triplets,
)
'''


def render_eval_folder() -> dict[str, str]:
    files = {f"{s.lm_eval_name}.yaml": task_yaml(s) for s in TASKS.values()}
    for g in GROUPS:
        files[f"_{group_name(g)}.yaml"] = group_yaml(group_name(g), [s.lm_eval_name for s in TASKS.values()
                                                                    if s.group == g])
    files[f"_{ALL_GROUP}.yaml"] = group_yaml(ALL_GROUP, [group_name(g) for g in GROUPS])
    files["utils.py"] = UTILS_PY
    return files


def write_eval_folder(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_eval_folder().items():
        path = folder / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written


def evals_dir() -> Path:
    """The folder of task YAMLs, for ``lm_eval --include_path`` and in-process TaskManager: the
    installed package data ``memmcl_merge.evals``, or, in a source checkout used without installing
    (``PYTHONPATH=<checkout>``, e.g. on a machine with no package index), the checkout's ``evals/``."""
    from importlib import resources

    try:
        return Path(str(resources.files("memmcl_merge.evals")))
    except ModuleNotFoundError:
        source = Path(__file__).resolve().parent.parent / "evals"
        if not (source / "utils.py").is_file():
            raise
        return source
