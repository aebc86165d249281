"""Does this machine score like the one a results file was scored on? A run's experts, each on its own
task, scored here against the own-task scores a results row recorded for them (RESULTS.md session 50).

    python benchmarks/dtype_check.py --run DIR --row NAME [--results R] [--dtype auto|float32|bfloat16]
                                     [--tasks a,b] [--out NAME2]

The row is one whose ``own_experts`` were scored from DIR's experts (a ``curriculum_variant.py --run DIR``
row). ``--dtype`` scores in another dtype than this machine's ``eval_dtype()`` (e.g. emulated bf16 on a
CPU without it: about 18x slower). Writes benchmarks/results/<out>.json after each task.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmark as rb


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="the evolution run whose experts/ are scored")
    ap.add_argument("--row", required=True, help="the results row whose own_experts were scored from them")
    ap.add_argument("--results", default="systems_experts3_full500")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    ap.add_argument("--tasks", default="", help="comma-separated tasks (default: every own expert of the row)")
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--data", type=Path, default=rb.DEFAULT_DATA)
    ap.add_argument("--out", default="dtype_check")
    args = ap.parse_args(argv)

    from memmcl_merge.evolve import live_dtype
    from memmcl_merge.io import read_json, write_json

    data = read_json(rb.RESULTS / f"{args.results}.json")
    own = data["systems"].get(args.row, {}).get("own_experts")
    if not own:
        raise SystemExit(f"results/{args.results}.json has no row {args.row!r} with own_experts")
    tasks = [t for t in args.tasks.split(",") if t] or list(own)
    if unknown := [t for t in tasks if t not in own]:
        raise SystemExit(f"--tasks {', '.join(unknown)}: the row records no own expert for them; it has {', '.join(own)}")
    dtype = live_dtype(args.dtype)  # auto: eval_dtype(), this machine's
    out = {"results": args.results, "row": args.row, "dtype_recorded": data["meta"].get("dtype"),
           "dtype_here": str(dtype), "machine": rb.machine(), "tasks": {}}
    for task in tasks:
        res = rb.score_model(str(args.run / "experts" / task), str(args.data.resolve()), "test_500", args.limit,
                             tasks=[task], dtype=dtype)
        out["tasks"][task] = {"recorded": own[task]["score"], "here": res["scores"][task],
                              "eval_seconds_here": res["eval_seconds"],
                              "eval_seconds_recorded": own[task].get("eval_seconds")}
        write_json(rb.RESULTS / f"{args.out}.json", out)
        print(f"{task}: recorded {own[task]['score']['score']:.4f}, here {res['scores'][task]['score']:.4f} ({dtype})",
              flush=True)


if __name__ == "__main__":
    main()
