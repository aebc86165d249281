"""An expert trained again on the same rows with another training seed (LoRA init, row order), scored on
its own task: how far an expert's own score, the yardstick of the bar's 95% half, moves by seed alone.

    python benchmarks/expert_seed_variant.py TASK SEED [SEED ...] [--config benchmarks/bench_experts3.yml] [--limit 500]

The experts' settings come from ``--config`` (its ``experts.train``; the rows are those the run's
expert was trained on). Each model goes to <output_dir>/variants/expert_<task>_seed_<seed>; the scores
go into benchmarks/results/expert_seeds.json (``--results``) under "<task>, training seed <seed>"
(skipped when there already).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmark as rb


def main(argv=None) -> None:
    args = rb.variant_args(__doc__, argv, results="expert_seeds")
    args.overrides = [int(s) for s in args.overrides]

    from memmcl_merge.experts import checkpoint_beside, sft_train, task_train_rows
    from memmcl_merge.tasks import get_task

    task = get_task(args.name).name  # an unknown task fails here, naming the known ones
    cfg = rb.bench_config(args)
    res = rb.Results(args.results)
    res.check_dtype()
    res.meta(machine=rb.machine(), config=str(args.config), limit=args.limit, dtype=str(rb.eval_dtype()),
             command=" ".join(["python", *sys.argv]))
    rows = task_train_rows(task, cfg.data, cfg.experts.train)  # the expert's own rows, drawn as it drew them
    for seed in args.overrides:
        name = f"{task}, training seed {seed}"
        if res.has(name):
            print(f"{name}: measured already, skipped")
            continue
        # the trainer shuffles the rows with this seed and draws the LoRA init from it
        train = cfg.experts.train.model_copy(update={"seed": seed})
        out = cfg.output_dir / "variants" / f"expert_{task}_seed_{seed}"
        if not (out / "config.json").is_file():
            tmp, ckpt = out.with_name(f".{out.name}.tmp"), checkpoint_beside(out)
            trained = sft_train(cfg.base_model, None, rows, train, tmp, checkpoint_dir=ckpt)
            tmp.replace(out)
            shutil.rmtree(ckpt, ignore_errors=True)
            build = trained.wall_s
        else:
            build = None  # a model left by an interrupted call: reused, its training time not known
        scored = rb.score_model(str(out), str(args.data.resolve()), "test_500", args.limit, tasks=task)
        res.put(name, {"model": str(out), "build_seconds": build, **scored})
        print(name, round(scored["scores"][task]["score"], 3))


if __name__ == "__main__":
    main()
