"""The benchmark's systems at the GPU budget (bench_gpu.yml) as lanes side by side on one accelerator.

A 135M model leaves an H200 mostly idle (training ran at ~4 steps/s, launch-bound: RESULTS.md,
session 11), so work that depends on nothing else runs at the same time, one process per lane:
the experts in ``--expert-lanes`` lanes, the multitask SFT and the base scores beside them; once the
experts exist, the three stage-1 searches side by side (``memmcl evolve --stage stage1/<group>``),
the experts' own scores and the mergekit baselines; after stage 2, its score, the curriculum and
the single-stage search (its budget is the MEM-MCL searches' seconds). Each lane writes its log to
``--logs``; every system is saved to ``results/<RESULTS>.json`` as soon as it is scored (locked
writes), so a run cut short keeps what finished, and running it again resumes. ``--stop-after``
ends all lanes at a wall-clock limit (a device command has one) and still writes the timeline.

    python benchmarks/device_lanes.py [--results systems_gpu] [--limit 500] [--data ../shared/data]
        [--config benchmarks/bench_gpu.yml] [--expert-lanes 4] [--logs runs/lanes] [--stop-after S]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run_benchmark as rb


@dataclass
class Lane:
    name: str
    argv: list[str]
    after: tuple[str, ...] = ()
    proc: subprocess.Popen | None = None
    started: float | None = None
    ended: float | None = None
    rc: int | None = None
    note: str = field(default="")


def lanes(cfg, config: Path, results: str, limit: int, data: Path, expert_lanes: int) -> list[Lane]:
    """The lanes of the series and what each waits for (names of other lanes)."""
    py = sys.executable
    systems = [py, str(HERE / "run_benchmark.py"), "systems", "--config", str(config), "--results", results,
               "--limit", str(limit), "--data", str(data), "--batch-size", "64", "--only"]
    memmcl = [py, "-c", "from memmcl_merge.cli import run; run()"]
    run_yaml = str(run_yaml_path(cfg))
    tasks = cfg.expert_tasks()
    chunks = [tasks[i::expert_lanes] for i in range(expert_lanes) if tasks[i::expert_lanes]]
    experts = tuple(f"experts {i + 1}" for i in range(len(chunks)))
    plan = cfg.plan()
    first, last = plan[0].stage, plan[-1].key
    searches = tuple(p.key for p in plan if p.stage == first)
    return [
        *(Lane(f"experts {i + 1}", [*memmcl, "experts", run_yaml, "--quiet", "--tasks", ",".join(c)])
          for i, c in enumerate(chunks)),
        Lane("multitask SFT", [*systems, "=multitask SFT"]),
        Lane("base", [*systems, "=base zero-shot,=base 2-shot"]),
        Lane("expert scores", [*systems, "expert:"], experts),
        Lane("baselines", [*systems, "baseline"], experts),
        *(Lane(k, [*memmcl, "evolve", run_yaml, "--stage", k], experts) for k in searches),
        # the later stages, then the systems that use them (finished searches are skipped)
        Lane(last, [*memmcl, "evolve", run_yaml], searches),
        Lane("MEM-MCL stage 2", [*systems, "=MEM-MCL stage 2"], (last,)),
        Lane("MEM-MCL stage 2 + curriculum", [*systems, "=MEM-MCL stage 2 + curriculum"], (last,)),
        Lane("single-stage CMA-ES", [*systems, "single-stage"], (last,)),
        Lane("multitask SFT, training seed 1", [*systems, "=multitask SFT, training seed 1"], ("base",)),
    ]


def run_yaml_path(cfg) -> Path:
    """The run YAML the `memmcl` lanes read: written by prepare, named in their command lines."""
    return cfg.output_dir / "lanes.yml"


def prepare(cfg, config: Path) -> Path:
    """What every lane would otherwise race for: the base model's conversion, its link in the run
    folder, the weak sets; and the run YAML the `memmcl` lanes read (the config with --data in it)."""
    from memmcl_merge.evolve import build_weak_sets, link_base
    from memmcl_merge.io import write_text

    link_base(cfg)
    build_weak_sets(cfg, sorted({t for p in cfg.plan() for t in p.tasks}))
    return write_text(run_yaml_path(cfg), f"extends: {config.resolve()}\ndata: {cfg.data}\n")


def run(all_lanes: list[Lane], logs: Path, stop_after: float | None, threads: int) -> list[Lane]:
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    t0 = time.time()
    by_name = {lane.name: lane for lane in all_lanes}

    def say(msg):
        print(f"[{time.time() - t0:6.0f} s] {msg}", flush=True)

    while True:
        for lane in all_lanes:
            if lane.proc is not None and lane.rc is None and (rc := lane.proc.poll()) is not None:
                lane.rc, lane.ended = rc, time.time()
                say(f"{'done' if rc == 0 else f'FAILED (rc {rc})'}: {lane.name} in {lane.ended - lane.started:.0f} s")
        for lane in all_lanes:
            if lane.proc is not None or lane.note:
                continue
            deps = [by_name[d] for d in lane.after]
            if any(d.note or (d.rc not in (None, 0)) for d in deps):
                lane.note = "skipped: " + ", ".join(d.name for d in deps if d.note or d.rc)
                say(f"{lane.note} -> {lane.name}")
            elif all(d.rc == 0 for d in deps):
                with open(logs / f"{lane.name.replace('/', '_').replace(' ', '_')}.log", "w") as log:
                    lane.proc = subprocess.Popen(lane.argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                                 start_new_session=True)  # its own group: stopped whole
                lane.started = time.time()
                say(f"start: {lane.name}")
        running = [lane for lane in all_lanes if lane.proc is not None and lane.rc is None]
        waiting = [lane for lane in all_lanes if lane.proc is None and not lane.note]
        if not running and not waiting:
            break
        if stop_after is not None and time.time() - t0 > stop_after:
            for lane in running:
                os.killpg(lane.proc.pid, signal.SIGTERM)
                lane.note = "stopped at --stop-after"
            time.sleep(5)
            for lane in running:
                if lane.proc.poll() is None:
                    os.killpg(lane.proc.pid, signal.SIGKILL)
            for lane in waiting:
                lane.note = "not started: --stop-after"
            say(f"--stop-after {stop_after:.0f} s: stopped {[x.name for x in running]}")
            break
        time.sleep(2)
    for lane in all_lanes:
        took = f"{lane.ended - lane.started:.0f} s" if lane.ended else "-"
        say(f"{lane.name:32} rc {lane.rc!s:5} {took:>7} {lane.note}")
    return all_lanes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="systems_gpu")
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--data", type=Path, default=rb.DEFAULT_DATA)
    ap.add_argument("--config", type=Path, default=HERE / "bench_gpu.yml")
    ap.add_argument("--expert-lanes", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads per lane (OMP_NUM_THREADS).")
    ap.add_argument("--logs", type=Path, default=rb.ROOT / "runs" / "lanes")
    ap.add_argument("--stop-after", type=float, default=None,
                    help="wall seconds from the start (the preparation included), then every lane is stopped")
    args = ap.parse_args(argv)
    started = time.time()
    cfg = rb.bench_config(args)
    run_yaml = prepare(cfg, args.config)
    left = None if args.stop_after is None else args.stop_after - (time.time() - started)  # counts the preparation
    done = run(lanes(cfg, args.config, args.results, args.limit, args.data, args.expert_lanes), args.logs,
               left, args.threads)
    print(f"run YAML {run_yaml}; logs {args.logs}")
    return 0 if all(lane.rc == 0 for lane in done) else 1


if __name__ == "__main__":
    sys.exit(main())
