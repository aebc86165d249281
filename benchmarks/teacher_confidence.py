"""Does an expert's confidence tell which of its teacher answers are right? (benchmarks/RESULTS.md,
session 48: whether filtering ``curriculum.teacher_rows`` by the teacher's confidence is worth building)

    python benchmarks/teacher_confidence.py --run DIR --tasks sst5 tweet_irony ... [--rows 128]

Per label task: the run's teacher rows (``curriculum/teacher/<task>/rows_<n>.jsonl``, the own expert's
answers to unseen train rows; answered here first where missing) scored again by that expert, so each
row has its answer's probability over the task's labels. Against the rows' gold labels: how often the
answers are right overall, on the most confident quarter and half, and on a pick of the same sizes that
takes each answered label's most confident rows in the train split's label shares (a filter that
cannot shift the label shares toward the expert's favourite answers); with the label shares of each
pick. Writes results/teacher_confidence_<--out>.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmark as rb

FRACTIONS = (0.25, 0.5)


def shares(labels, idx) -> dict[str, float]:
    """Each label's share of the answers ``idx`` (label indices)."""
    n = max(len(idx), 1)
    return {lab: round(sum(1 for i in idx if i == k) / n, 3) for k, lab in enumerate(labels)}


def most_confident(probs, frac) -> list[int]:
    """Row indices of the ``frac`` most confident answers, whatever their labels."""
    order = sorted(range(len(probs)), key=lambda j: -max(probs[j]))
    return order[:round(frac * len(probs))]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="the evolution run (its experts, teacher rows, config)")
    ap.add_argument("--tasks", nargs="+", required=True)
    ap.add_argument("--rows", type=int, default=128, help="teacher rows per task (curriculum.teacher_rows)")
    ap.add_argument("--out", default="session48")
    ap.add_argument("--config", type=Path, default=rb.HERE / "bench_experts3.yml")
    ap.add_argument("--data", type=Path, default=rb.DEFAULT_DATA)
    args = ap.parse_args(argv)

    from memmcl_merge.data import load_docs
    from memmcl_merge.experts import expert_folder
    from memmcl_merge.io import write_json
    from memmcl_merge.tasks import get_task
    from memmcl_merge.teacher_rows import answer_probs, confident_pick, label_shares, teacher_docs

    cfg = rb.run_config(args)
    cfg = cfg.model_copy(update={"curriculum": cfg.curriculum.model_copy(update={"teacher_pick": None})})
    out = {"run": str(args.run), "rows": args.rows, "tasks": {}}
    triplets = [t for t in args.tasks if get_task(t).is_generative]
    if triplets:  # checked before any model is loaded
        raise SystemExit(f"{', '.join(triplets)}: triplet tasks have no answer probabilities over labels; pick label tasks")
    for task in args.tasks:
        spec = get_task(task)
        labels = list(spec.labels)
        pool = {d["id"]: d for d in load_docs(spec, "train", cfg.data)}
        prior = label_shares(spec, list(pool.values()))
        taught = teacher_docs(cfg, task, args.rows)  # every row: the picks are made here
        gold_docs = [pool[d["id"]] for d in taught]
        probs = answer_probs(cfg, task, gold_docs, expert_folder(cfg, task))
        pred = [max(range(len(p)), key=p.__getitem__) for p in probs]
        gold = [labels.index(d["label"]) for d in gold_docs]
        if [labels[i] for i in pred] != [d["label"] for d in taught]:
            raise SystemExit(f"{task}: the expert's answers differ from the stored teacher rows")
        right = [int(a == b) for a, b in zip(pred, gold)]
        res = {"rows": len(gold), "right": round(sum(right) / len(right), 3), "gold_shares": shares(labels, gold),
               "answer_shares": shares(labels, pred), "train_shares": {k: round(v, 3) for k, v in prior.items()}}
        for frac in FRACTIONS:
            for kind, idx in {"top": most_confident(probs, frac),
                              "balanced": confident_pick(probs, labels, prior, frac)}.items():
                res[f"{kind}_{int(frac * 100)}"] = {
                    "rows": len(idx), "right": round(sum(right[j] for j in idx) / max(len(idx), 1), 3),
                    "answer_shares": shares(labels, [pred[j] for j in idx]),
                    "gold_shares": shares(labels, [gold[j] for j in idx])}
        out["tasks"][task] = res
        print(task, res, flush=True)
        write_json(rb.RESULTS / f"teacher_confidence_{args.out}.json", out)  # after each task: a failure keeps the done ones


if __name__ == "__main__":
    main()
