"""Benchmarks on real data (not tests): every figure in the README and RESULTS.md comes from here.

    python benchmarks/run_benchmark.py zero_shot [--data ../shared/data] [--limit N]

Steps write ``benchmarks/results/<step>.json`` (atomically); each system's scores are saved as soon as
they are measured and are not recomputed when the script is run again (delete the file to redo).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DEFAULT_DATA = ROOT.parent / "shared" / "data"


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "python": sys.version.split()[0],
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


class Results:
    """One JSON file per step: {"meta": ..., "systems": {name: {...}}}, saved after every system."""

    def __init__(self, step: str):
        from memmcl_merge.io import read_json

        self.path = RESULTS / f"{step}.json"
        self.data = read_json(self.path) if self.path.is_file() else {"meta": {}, "systems": {}}

    def has(self, system: str) -> bool:
        return system in self.data["systems"]

    def put(self, system: str, value: dict) -> None:
        from memmcl_merge.io import write_json

        self.data["systems"][system] = value
        write_json(self.path, self.data)

    def meta(self, **kw) -> None:
        from memmcl_merge.io import write_json

        self.data["meta"].update(kw)
        write_json(self.path, self.data)


def score_model(ref: str, data: str, split: str, limit: int | None, tasks="all", num_demos: int = 0,
                batch_size: int = 16) -> dict:
    from memmcl_merge.evaluation import evaluate_model, group_means

    t0 = time.perf_counter()
    res = evaluate_model(ref, tasks, data=data, split=split, limit=limit, num_demos=num_demos,
                         batch_size=batch_size)
    return {"scores": res["scores"], "means": group_means(res["scores"]), "eval_seconds": res["seconds"],
            "wall_seconds": time.perf_counter() - t0}


def step_zero_shot(args) -> None:
    """SmolLM2-135M-Instruct zero-shot on all 12 tasks (issue 3)."""
    from memmcl_merge.evaluation import format_table
    from memmcl_merge.models import resolve_model

    res = Results("zero_shot")
    res.meta(machine=machine(), data=str(args.data), split=args.split, limit=args.limit,
             command=" ".join(["python", *sys.argv]))
    ref = resolve_model(args.model)
    for task in _tasks(args):
        if res.has(task):
            continue
        out = score_model(ref, str(args.data), args.split, args.limit, tasks=task)
        res.put(task, {"scores": out["scores"][task], "seconds": out["eval_seconds"]})
        print(f"{task}: {out['scores'][task]['score']:.3f} in {out['eval_seconds']:.0f} s", flush=True)
    table = {"zero-shot": {t: v["scores"] for t, v in res.data["systems"].items()}}
    print(format_table(table))


def _tasks(args) -> list[str]:
    from memmcl_merge.evaluation import resolve_tasks

    return [t.name for t in resolve_tasks(args.tasks)]


STEPS = {"zero_shot": step_zero_shot}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=sorted(STEPS))
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--split", default="test_500")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--tasks", default="all")
    args = p.parse_args(argv)
    if not (args.data / "tasks.json").is_file():
        sys.exit(f"no benchmark data at {args.data} (expected the ../shared/data layout with tasks.json)")
    STEPS[args.step](args)


if __name__ == "__main__":
    main()
