"""Variants of one stage-1 search against its own start point, on the test rows (RESULTS.md,
session 26; not a test). Issue 8's "genome granularity": does a finer or coarser genome
(``search.layer_groups``, ``search.evolve_density``) find a better merge with the same budget?

    python benchmarks/stage_variants.py --config benchmarks/mast_granularity.yml --results mast_granularity \\
        --variant "layer groups 2 (bench)" --variant "layer groups 1" search.layer_groups=1 ...

The config names one task group (a single-group plan: one stage-1 search) whose experts are trained
already (``memmcl experts``). Each ``--variant NAME [KEY=VALUE ...]`` (the overrides of
evolve_variant.py) runs that search in runs/.../variants/stage_<slug> on the same experts and weak sets;
the untuned start point (every expert at the start weight, density 1: the same merge for every
genome) is merged once. Each expert on its own task, the start point and each winner are scored on
the test split with every row's answer kept (results/<results>.json, saved per model, skipped when
there), then a paired bootstrap over the test rows compares each winner with the start point and
with the first variant, and, where the variants span several weak draws (``weak.seed=``), each with
the first variant of its own draw (results key ``paired``, or ``--key``). Classification groups only
(SC, MAST).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmark as rb
from evolve_variant import with_overrides

START = "start point"


def answers(model_dir: Path, tasks: list[str], data: str, split: str, limit: int | None) -> dict:
    """Per task: score and every row's gold and predicted label index (strings of digits)."""
    from memmcl_merge.calibration import predict, task_score
    from memmcl_merge.evaluation import Evaluator, choice_answers
    from memmcl_merge.models import load_model_and_tokenizer
    from memmcl_merge.tasks import get_task

    specs = [get_task(t) for t in tasks]
    if any(s.is_generative for s in specs):
        raise SystemExit(f"stage_variants.py scores label tasks only; {[s.name for s in specs if s.is_generative]} "
                         "generate triplets (see absa_fitness.py)")
    model, tok = load_model_and_tokenizer(str(model_dir), dtype=rb.eval_dtype())
    ev = Evaluator(specs, data=data, split=split, limit=limit, batch_size=rb.SCORE_BATCH_SIZE)
    logged = choice_answers(ev.logged_samples(ev.wrap(model, tok))[1])
    out = {}
    for spec in specs:
        gold, pred = logged[spec.name]["gold"], predict(logged[spec.name]["lls"])
        out[spec.name] = {"score": task_score(spec.metric, gold, pred), "gold": "".join(map(str, gold)),
                          "pred": "".join(map(str, pred))}
    return out


def materialise_start(cfg, out_dir: Path, key: str | None = None) -> Path:
    """The search's start point as a model folder (what generation -1 of every variant scores): the
    plan's first search, or the one named by ``key`` (``stage2/unified``)."""
    from memmcl_merge.evolve import SearchRunner, build_weak_sets, link_base, search_space
    from memmcl_merge.experts import save_plain_model
    from memmcl_merge.io import replace_dir

    if (out_dir / "config.json").is_file():
        return out_dir
    plans = {p.key: p for p in cfg.plan()}
    if key is not None and key not in plans:
        raise ValueError(f"no search {key!r} in the plan; searches are {list(plans)}")
    plan = plans[key] if key else next(iter(plans.values()))
    space, x0 = search_space(plan, cfg)
    runner = SearchRunner(cfg, plan, link_base(cfg), build_weak_sets(cfg, plan.tasks, None))
    runner.apply(space.decode(x0))
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    save_plain_model(runner.model, runner.tok, tmp, save_dtype="bfloat16")
    return replace_dir(tmp, out_dir)  # a folder left half-written by a killed run is replaced whole


def compare(rows: dict, names: list[str], reference: str, metrics: dict[str, str]) -> dict:
    """Paired bootstrap of each of ``names`` against ``reference`` on the tasks of ``metrics``."""
    from paired import paired_bootstrap

    return {n: paired_bootstrap([rb.row_answers(rows[n], metrics)], [rb.row_answers(rows[reference], metrics)], metrics)
            for n in names if n != reference}


def first_of_its_draw(draws: dict[str, int]) -> dict[str, str]:
    """Variant (in run order) -> the first variant run on the same weak draw, for every variant that
    is not itself the first of its draw: a winner is compared with one searched on the same weak rows."""
    firsts: dict[int, str] = {}
    for name, draw in draws.items():
        firsts.setdefault(draw, name)
    return {n: firsts[d] for n, d in draws.items() if firsts[d] != n}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", nargs="+", action="append", required=True, metavar=("NAME", "KEY=VALUE"))
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--data", type=Path, default=rb.DEFAULT_DATA)
    ap.add_argument("--split", default="test_500")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--key", default="paired", help="the results key of the comparison (one per set of variants)")
    args = ap.parse_args(argv)

    from memmcl_merge.evolve import run_plan
    from memmcl_merge.tasks import get_task

    bench = rb.bench_config(args)
    plans = bench.plan()
    if len(plans) != 1:
        raise SystemExit(f"{args.config}: {len(plans)} searches in its plan; name the tasks of one group")
    tasks = plans[0].tasks
    res = rb.Results(args.results)
    res.check_dtype()
    res.meta(machine=rb.machine(), data=str(args.data), split=args.split, limit=args.limit, dtype=str(rb.eval_dtype()),
             append={"commands": " ".join(["python", *sys.argv])})
    data = str(args.data.resolve())

    def score(name: str, model_dir: Path, on: list[str], extra: dict) -> None:
        if res.has(name):
            return
        t0 = time.perf_counter()
        scores = answers(model_dir, on, data, args.split, args.limit)
        res.put(name, {"model": str(model_dir), "scores": scores, "seconds_eval": time.perf_counter() - t0, **extra})
        print(f"{name}: " + ", ".join(f"{t} {v['score']:.3f}" for t, v in scores.items())
              + f" ({time.perf_counter() - t0:.0f} s)", flush=True)

    for t in tasks:
        score(f"expert:{t} (own task)", bench.experts_dir / t, [t], {})
    variants = []
    for name, *overrides in args.variant:
        run_dir = (bench.output_dir / "variants" / f"stage_{rb.variant_slug(name)}").resolve()
        cfg = with_overrides(bench, overrides).model_copy(update={"output_dir": run_dir})
        if not (run_dir / "experts").exists():
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "experts").symlink_to(bench.experts_dir.resolve(), target_is_directory=True)
        search = next(iter(run_plan(cfg).values()))
        score(name, Path(search["model"]), tasks,
              {"overrides": overrides, "fitness": [search["start_fitness"], search["best_fitness"]],
               "evaluations": search["evaluations"], "search_seconds": search["seconds"]})
        variants.append((name, cfg))
    start_dir = materialise_start(variants[0][1], bench.output_dir / "start_point")
    score(START, start_dir, tasks, {})

    rows = res.data["systems"]
    metrics = {t: get_task(t).metric for t in tasks}
    names = [n for n, _ in variants]
    paired = {"against_start": compare(rows, names, START, metrics),
              "against_first": compare(rows, names, names[0], metrics)}
    same_draw = first_of_its_draw({n: c.evolve.weak.seed for n, c in variants})
    if any(ref != names[0] for ref in same_draw.values()):
        paired["against_first_of_its_draw"] = {n: compare(rows, [n], ref, metrics)[n] for n, ref in same_draw.items()}
    means = {n: float(np.mean([rows[n]["scores"][t]["score"] for t in tasks])) for n in [START, *names]}
    experts = {t: rows[f"expert:{t} (own task)"]["scores"][t]["score"] for t in tasks}
    kept = {n: {t: round(rows[n]["scores"][t]["score"] / experts[t], 4) for t in tasks} for n in [START, *names]}
    res.put(args.key, {"variants": names, "means": means, "kept_share_of_expert": kept, **paired})
    print(json.dumps({"means": means, **{f"{k} (mean diff, p)": {n: (v["mean"]["difference"], v["mean"]["p"])
                                                                 for n, v in paired[k].items()} for k in paired}},
                     indent=2))


if __name__ == "__main__":
    main()
