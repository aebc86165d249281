"""benchmarks/device_lanes.py: the lanes of the GPU series and their scheduling (no model run), and the
locked JSON update the lanes share results files with."""

import json
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import device_lanes
import run_benchmark as rb

from memmcl_merge.io import locked_update


def _bump(path, n):
    for _ in range(n):
        locked_update(path, lambda d: d.__setitem__("n", d["n"] + 1), {"n": 0})


def test_locked_update_loses_no_write_between_processes(tmp_path):
    path = tmp_path / "shared.json"
    procs = [multiprocessing.get_context("spawn").Process(target=_bump, args=(path, 25)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert json.loads(path.read_text())["n"] == 75


def test_gpu_series_lanes_cover_every_system_once_in_order(tmp_path):
    args = type("A", (), {"config": rb.HERE / "bench_gpu.yml", "data": tmp_path})()
    cfg = rb.bench_config(args)
    lanes = device_lanes.lanes(cfg, args.config, "systems_gpu", 500, tmp_path, expert_lanes=5)
    names = [lane.name for lane in lanes]
    assert len(names) == len(set(names))
    # every dependency is a lane that comes earlier (the scheduler would wait forever otherwise)
    for i, lane in enumerate(lanes):
        assert all(d in names[:i] for d in lane.after), lane
    # the experts are split over the lanes, each task once
    trained = [t for lane in lanes if lane.name.startswith("experts ")
               for t in lane.argv[lane.argv.index("--tasks") + 1].split(",")]
    assert sorted(trained) == sorted(cfg.expert_tasks()) and len(trained) == 12
    # the stage-1 searches run side by side, after every expert lane; the curriculum after stage 2
    by = {lane.name: lane for lane in lanes}
    stage1 = [p.key for p in cfg.plan() if p.stage == "stage1"]
    assert len(stage1) == 3 and all(set(by[k].after) == {f"experts {i}" for i in range(1, 6)} for k in stage1)
    assert by["MEM-MCL stage 2 + curriculum"].after == ("stage2/unified",)
    assert set(by["stage2/unified"].after) == set(stage1)


def _py(code):
    return [sys.executable, "-c", code]


def test_scheduler_runs_what_is_ready_skips_what_failed_and_stops_on_time(tmp_path, capsys):
    marks = tmp_path / "marks"
    marks.mkdir()
    touch = "import pathlib, sys; pathlib.Path(sys.argv[1]).touch()"
    lanes = [
        device_lanes.Lane("a", [*_py(touch), str(marks / "a")]),
        device_lanes.Lane("bad", _py("raise SystemExit(3)")),
        device_lanes.Lane("after a", [*_py(touch), str(marks / "after_a")], ("a",)),
        device_lanes.Lane("after bad", [*_py(touch), str(marks / "after_bad")], ("bad",)),
        device_lanes.Lane("after after bad", [*_py(touch), str(marks / "x")], ("after bad",)),
    ]
    done = {lane.name: lane for lane in device_lanes.run(lanes, tmp_path / "logs", None, 1)}
    assert sorted(p.name for p in marks.iterdir()) == ["a", "after_a"]
    assert done["a"].rc == 0 and done["after a"].rc == 0 and done["bad"].rc == 3
    assert done["after bad"].note.startswith("skipped") and done["after after bad"].note.startswith("skipped")
    assert (tmp_path / "logs" / "after_a.log").is_file()
    assert "FAILED (rc 3): bad" in capsys.readouterr().out

    slow = [device_lanes.Lane("sleeper", _py("import time; time.sleep(60)")),
            device_lanes.Lane("never", _py("pass"), ("sleeper",))]
    t0 = time.time()
    done = {lane.name: lane for lane in device_lanes.run(slow, tmp_path / "logs2", 3, 1)}
    assert time.time() - t0 < 30
    assert done["sleeper"].note == "stopped at --stop-after" and done["never"].note.startswith("not started")


def test_prepare_writes_a_run_yaml_the_memmcl_lanes_can_load(tmp_path, monkeypatch):
    from memmcl_merge import evolve
    from memmcl_merge.config import load_config

    monkeypatch.setattr(evolve, "link_base", lambda cfg: None)  # no model here
    monkeypatch.setattr(evolve, "build_weak_sets", lambda cfg, tasks: None)
    args = type("A", (), {"config": rb.HERE / "bench_gpu.yml", "data": tmp_path})()
    cfg = rb.bench_config(args).model_copy(update={"output_dir": tmp_path / "run"})
    again = load_config(device_lanes.prepare(cfg, args.config))
    assert again.data == str(tmp_path.resolve()) and again.experts.train.batch_size == 32
    assert again.output_dir == (Path.cwd() / "runs" / "bench_gpu").resolve()
