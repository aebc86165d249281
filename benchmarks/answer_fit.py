"""How closely models fit the gold answers of a task's training rows, and of train rows they never saw
(benchmarks/RESULTS.md, session 44: what distilling from the own experts changed).

    python benchmarks/answer_fit.py --run DIR --tasks sst5 tweet_irony --model NAME=FOLDER ... [--unseen 48]

Per task and model, on the curriculum's own training rows of that task (the experts' sample, the
first ``--seen``) and on ``--unseen`` rows of the train split outside that sample (seeded), with
one demonstration as in training: the mean probability of the gold answer's first token after the
prompt, and how often it is the model's top token. The run's own expert of each task is added as
``expert``. Writes results/answer_fit_<--out>.json.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmark as rb


def fit(model, tok, rows) -> dict[str, float]:
    """Mean p(gold first answer token | prompt) and top-1 agreement over ``rows``."""
    import torch

    probs, top = [], 0
    with torch.no_grad():
        for r in rows:
            prompt, answer = tok(r["prompt"])["input_ids"], tok(r["completion"])["input_ids"]
            logp = model(torch.tensor([prompt + answer])).logits[0, len(prompt) - 1].log_softmax(-1)
            probs.append(logp[answer[0]].exp().item())
            top += int(logp.argmax().item() == answer[0])
    return {"p_gold": round(sum(probs) / len(probs), 4), "top1": round(top / len(rows), 4), "rows": len(rows)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="the evolution run (its experts and config)")
    ap.add_argument("--tasks", nargs="+", required=True)
    ap.add_argument("--model", action="append", default=[], metavar="NAME=FOLDER", help="a model to measure")
    ap.add_argument("--seen", type=int, default=48, help="training rows per task")
    ap.add_argument("--unseen", type=int, default=48, help="train rows outside the sample, per task")
    ap.add_argument("--out", default="session44")
    ap.add_argument("--config", type=Path, default=rb.HERE / "bench_experts3.yml")
    ap.add_argument("--data", type=Path, default=rb.DEFAULT_DATA)
    args = ap.parse_args(argv)

    from memmcl_merge.data import load_docs
    from memmcl_merge.experts import expert_folder, sft_rows, task_train_docs
    from memmcl_merge.io import write_json
    from memmcl_merge.models import load_model_and_tokenizer
    from memmcl_merge.tasks import get_task

    models = dict(m.split("=", 1) for m in args.model)
    cfg = rb.run_config(args)
    # the curriculum's rows of each task are the experts' sample (curriculum.py: curriculum_rows)
    train = cfg.curriculum.train.model_copy(update={"seed": cfg.experts.train.seed})
    out = {"run": str(args.run), "seen": args.seen, "unseen": args.unseen, "tasks": {}}
    for task in args.tasks:
        spec = get_task(task)
        pool = load_docs(spec, "train", cfg.data)
        sample = task_train_docs(spec, pool, train)
        used = {d["id"] for d in sample}
        rest = [d for d in pool if d["id"] not in used]
        random.Random(f"answer-fit:{task}").shuffle(rest)
        sets = {"seen": sft_rows(spec, sample, pool, train.num_demos, train.seed)[:args.seen],
                "unseen": sft_rows(spec, rest[:args.unseen], pool, train.num_demos, train.seed)}
        out["tasks"][task] = {}
        for name, folder in {"expert": str(expert_folder(cfg, task)), **models}.items():
            model, tok = load_model_and_tokenizer(folder)  # fp32
            model.eval()
            out["tasks"][task][name] = {k: fit(model, tok, rows) for k, rows in sets.items()}
            print(task, name, out["tasks"][task][name], flush=True)
    write_json(rb.RESULTS / f"answer_fit_{args.out}.json", out)


if __name__ == "__main__":
    main()
