"""A controlled evolution run for benchmarks/RESULTS.md: the benchmark's MEM-MCL (both stages, then
the curriculum) with some evolution settings changed, from the same experts, scored like every
other system.

    python benchmarks/evolve_variant.py NAME KEY=VALUE ... [--limit 200] [--results NAME2] [--until-merge]

KEY is ``weak.FIELD`` (e.g. ``weak.sampling=proportional``, ``weak.size=32``) or ``search.FIELD``
(``search.layer_groups=3``) or a field of ``evolve`` itself, or ``experts.train.FIELD``
(``experts.train.epochs=3``). The run lives in runs/bench/variants/evolve_<slug>. Without an
``experts.`` override its ``experts`` folder links to the benchmark's experts, so none is retrained;
with one the run trains its own experts (same rows, other settings) and scores each on its own task,
which the ``bar`` step then uses for the 95% half of the bar. ``--start-of KEY`` also writes the
untuned start point of search KEY (``stage2/unified``: every member at the start weight, density 1)
to <run>/start_points/<KEY>, to score beside the winner. ``--until-merge`` stops after the
stage-2 merge (experts and their own-task scores, both searches), for a fresh machine that needs the
merge back before ``curriculum_variant.py --run`` trains from it; nothing is written to NAME2.
``--record DIR`` keeps the draw's small files in DIR (each search's journal, fitness spec, live dtype and
member scores; the experts' own-task scores); ``--replay DIR`` seeds a fresh run with them, so the searches
replay their journals (no candidate scored again; a journal of other experts or settings is refused)
and the experts are trained but not scored: the second draw back in the experts' training time.
Otherwise the final model (stage 2 + curriculum) is scored into benchmarks/results/NAME2.json under
NAME. Each part resumes: trained experts, their scores, finished searches, a finished curriculum and a
measured NAME are skipped.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmark as rb


def with_overrides(cfg, overrides: list[str]):
    """The run config with ``evolve`` settings replaced (``weak.X=V``, ``search.X=V``, ``X=V``) and
    ``experts`` settings (``experts.train.X=V``)."""
    evolve, experts = cfg.evolve.model_dump(), cfg.experts.model_dump()
    for item in overrides:
        key, _, raw = item.partition("=")
        value = yaml.safe_load(raw)
        root, path = (experts, key.removeprefix("experts.")) if key.startswith("experts.") else (evolve, key)
        where, *fields = root, *path.split(".")
        for section in fields[:-1]:
            where = where.get(section) if isinstance(where, dict) else None
        if not isinstance(where, dict) or fields[-1] not in where:
            raise SystemExit(f"unknown override {key!r}: not a field of evolve, evolve.weak, evolve.search "
                             "or experts.train")
        where[fields[-1]] = value
    return cfg.model_copy(update={"evolve": cfg.evolve.model_validate(evolve),
                                  "experts": cfg.experts.model_validate(experts)})


DRAW_FILES = ("journal.jsonl", "fitness.json", "live.json", "member_scores.json")


def copy_draw(cfg, src: Path, dst: Path) -> list[str]:
    """Copy a run's recorded draw (``--record``/``--replay``: the experts' own-task scores and each
    search's small files) from ``src`` to ``dst`` where ``dst`` lacks them; returns what was copied."""
    import shutil

    rel = ["experts_own_scores.json"] + [f"evolve/{p.key}/{f}" for p in cfg.plan() for f in DRAW_FILES]
    copied = [r for r in rel if (src / r).is_file() and not (dst / r).exists()]
    for r in copied:
        (dst / r).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / r, dst / r)
    return copied


def own_task_scores(cfg, run_dir: Path, args) -> dict:
    """Train the run's own experts (resumable) and score each on its own task, one at a time, kept in
    run_dir/experts_own_scores.json so a restart scores only the missing ones."""
    from memmcl_merge.experts import train_experts
    from memmcl_merge.io import read_json, write_json

    path = run_dir / "experts_own_scores.json"
    scores = read_json(path) if path.is_file() else {}
    for r in train_experts(cfg):
        if r.task not in scores:
            scored = rb.score_model(str(r.folder), str(args.data.resolve()), "test_500", args.limit, tasks=[r.task])
            scores[r.task] = {"score": scored["scores"][r.task], "eval_seconds": scored["eval_seconds"],
                              "train": {**r.row(), "wall_s": r.record.get("wall_s")}}
            write_json(path, scores)
            print(f"expert {r.task}: own task {scored['scores'][r.task]['score']:.3f}", flush=True)
    return scores


def main(argv=None) -> None:
    def extra(ap):
        ap.add_argument("--until-merge", action="store_true", help="stop after the stage-2 merge; score and "
                        "record nothing")
        ap.add_argument("--start-of", metavar="KEY", action="append", default=[],
                        help="also write search KEY's untuned start point to <run>/start_points/<KEY>")
        ap.add_argument("--record", type=Path, metavar="DIR",
                        help="after the searches, keep the draw's journals and own-task scores in DIR")
        ap.add_argument("--replay", type=Path, metavar="DIR",
                        help="seed the run with a draw kept by --record (searches replay, experts are not rescored)")

    args = rb.variant_args(__doc__, argv, extra=extra)

    from memmcl_merge.curriculum import run_curriculum
    from memmcl_merge.evolve import run_plan

    res = rb.Results(args.results)
    res.check_dtype()
    if res.has(args.name) and not args.until_merge:
        print(f"{args.name}: measured already, skipped")
        return
    bench = rb.bench_config(args)
    run_dir = (bench.output_dir / "variants" / f"evolve_{rb.variant_slug(args.name)}").resolve()
    cfg = with_overrides(bench, args.overrides).model_copy(update={"output_dir": run_dir})
    experts = run_dir / "experts"
    own = None
    t0 = time.perf_counter()
    if args.replay:
        if not args.replay.is_dir():
            raise SystemExit(f"--replay {args.replay}: no such folder (write one with --record)")
        print(f"replaying {len(copy_draw(cfg, args.replay, run_dir))} recorded files from {args.replay}", flush=True)
    if any(o.startswith("experts.") for o in args.overrides):
        own = own_task_scores(cfg, run_dir, args)
    elif not experts.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        experts.symlink_to(bench.experts_dir.resolve(), target_is_directory=True)
    searches = run_plan(cfg)
    search_seconds = sum(r["seconds"] for r in searches.values())
    fitness = {k: [r["start_fitness"], r["best_fitness"]] for k, r in searches.items()}
    if args.record:
        print(f"recorded {len(copy_draw(cfg, run_dir, args.record))} files of the draw in {args.record}", flush=True)
    for key in args.start_of:
        from stage_variants import materialise_start

        print(f"{key}: start point in {materialise_start(cfg, run_dir / 'start_points' / key, key)}", flush=True)
    if args.until_merge:
        print(f"evolution {search_seconds:.0f} s; stage-2 merge in {run_dir}; fitness (start, best) {fitness}")
        return
    build = run_curriculum(cfg)["seconds"]
    print(f"evolution {search_seconds:.0f} s, curriculum {build:.0f} s (this call {time.perf_counter() - t0:.0f} s)")
    final = run_dir / "final"
    scored = rb.score_model(str(final), str(args.data.resolve()), "test_500", args.limit, tasks="all")
    res.put(args.name, {"model": str(final), "build_seconds": search_seconds + build,
                        "search_seconds": search_seconds, "curriculum_seconds": build,
                        "overrides": args.overrides,
                        "fitness": fitness,
                        **({"own_experts": own} if own else {}), **scored})
    print(args.name, scored["means"])


if __name__ == "__main__":
    main()
