"""Stage 0, the experts: TRL SFT (LoRA merged back or full FT) on the tiny random Llama.

The tiny model learns tweet_sentiment (keyword-driven in the embedded corpus) with full fine-tuning in
about a hundred steps. LoRA on the default ``all-linear`` targets cannot move a *random* 64-wide model
off the label prior (frozen random embeddings, fixed lm_head scale), so the LoRA runs here check the
mechanics (merge, folder, skip, restart), and learning is checked with full FT.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from memmcl_merge import experts as ex
from memmcl_merge.config import ConfigError, ExpertsConfig, LoraConfig, RunConfig, TrainConfig, load_config

TASK = "tweet_sentiment"


def _cfg(out: Path, base: Path, train: TrainConfig, dev_limit: int = 32, tasks=(TASK,)) -> RunConfig:
    return RunConfig(output_dir=out, base_model=str(base), data="embedded", tasks=list(tasks),
                     experts=ExpertsConfig(train=train, dev_limit=dev_limit))


LORA = TrainConfig(method="lora", learning_rate=1e-2, batch_size=8, max_examples=32, epochs=1.0,
                   lora=LoraConfig(r=4, alpha=8, dropout=0.0), save_dtype="float32", logging_steps=1)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny models gain nothing from a second thread, and on a shared 2-core machine two OpenMP threads
    that compete with another process are up to 30x slower (measured: 3 s vs 109 s for one run)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_base_dir):
    """One LoRA expert, trained with a stale temp folder of a killed run lying next to it."""
    out = tmp_path_factory.mktemp("lora-run")
    cfg = _cfg(out, tiny_base_dir, LORA)
    stale = cfg.experts_dir / f".{TASK}.tmp-999999999"  # no such pid
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half written")
    results = ex.train_experts(cfg, progress=False)
    return cfg, results, stale


# (1) the expert learns its task ------------------------------------------------------------------
def test_full_ft_expert_learns_its_task_and_records_the_folder_score(tmp_path, tiny_base_dir):
    from memmcl_merge.evaluation import Evaluator, resolve_tasks
    from memmcl_merge.models import load_model_and_tokenizer

    train = TrainConfig(method="full", learning_rate=3e-3, batch_size=8, max_examples=256, epochs=3.0,
                        save_dtype="bfloat16", logging_steps=8)
    cfg = _cfg(tmp_path, tiny_base_dir, train, dev_limit=64)
    (res,) = ex.train_experts(cfg, progress=False)
    dev = res.record["dev"]
    before, after = dev["base"]["acc"], dev["expert"]["acc"]
    # Measured with base-model seeds 0-4: acc 0.33-0.47 -> 0.89-0.95 after these 96 steps (seed 0, the
    # fixture: 0.33 -> 0.86-0.95); the thresholds leave a wide margin. p_gold of the fixture: 0.33 ->
    # 0.63-0.64 (on a label-balanced and on a proportional dev sample, session 6).
    assert after >= before + 0.3 and after >= 0.75, (before, after)
    assert dev["expert"]["p_gold"] > dev["base"]["p_gold"] + 0.2
    assert res.record["steps"] == 96 and res.record["train_loss"] < 3.0
    # The recorded score is the score of the saved (bf16) folder, reloaded.
    model, tok = load_model_and_tokenizer(str(res.folder))
    ev = Evaluator(resolve_tasks(TASK), data="embedded", split="dev", limit=64, seed=cfg.seed)
    again = ev.evaluate(ev.wrap(model, tok))[TASK]
    assert again["acc"] == pytest.approx(after, abs=1.5 / 64)
    cached = json.loads((cfg.experts_dir / ex.BASE_SCORES_FILE).read_text())
    assert cached["scores"][TASK] == dev["base"]


# (2) the folder is a plain HF model --------------------------------------------------------------
def test_lora_expert_is_a_plain_merged_safetensors_folder(lora_run, tiny_base_dir):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    cfg, (res,), _ = lora_run
    folder = cfg.experts_dir / TASK
    assert res.folder == folder and not res.skipped and ex.is_complete(folder)
    names = {p.name for p in folder.iterdir()}
    assert "model.safetensors" in names and "config.json" in names and "tokenizer.json" in names
    assert not {"adapter_config.json", "adapter_model.safetensors", "training_args.bin"} & names
    assert not [n for n in names if n.startswith("checkpoint")]
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    weights = load_file(str(folder / "model.safetensors"))
    assert not [k for k in weights if "lora" in k or "base_layer" in k]
    base = load_file(str(Path(tiny_base_dir) / "model.safetensors"))
    assert set(weights) == set(base)
    # LoRA was merged into the attention/MLP weights; the embeddings were untouched.
    assert not torch.equal(weights["model.layers.0.self_attn.q_proj.weight"],
                           base["model.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(weights["model.embed_tokens.weight"], base["model.embed_tokens.weight"])
    AutoModelForCausalLM.from_pretrained(folder)  # loads as a plain model

    rec = json.loads((folder / ex.MARKER).read_text())
    for key in ("task", "config", "base_model", "data_sha256", "steps", "train_loss", "wall_s",
                "examples_per_s", "dev", "num_examples"):
        assert key in rec, key
    assert rec["task"] == TASK and rec["config"] == cfg.experts.model_dump(mode="json")
    assert rec["base_model"] == str(tiny_base_dir) and rec["num_examples"] == 32 and rec["steps"] == 4
    assert rec["data_sha256"] == ex.rows_sha256(ex.task_train_rows(TASK, "embedded", LORA))
    assert {"expert", "base"} <= set(rec["dev"]) and "score" in rec["dev"]["expert"]
    assert rec["dev"]["limit"] == 32 and rec["dev"]["split"] == "dev"
    assert {"torch", "transformers", "trl", "peft"} <= set(rec["versions"])  # what a rebuild must match
    assert "| " + TASK + " | 32 | 4 |" in ex.format_results([res])


# (3) a complete expert is skipped ----------------------------------------------------------------
def test_second_call_skips_complete_expert(lora_run, monkeypatch):
    cfg, (first,), _ = lora_run

    def boom(*a, **k):
        raise AssertionError("a complete expert must not be retrained")

    monkeypatch.setattr(ex, "sft_train", boom)
    t0 = time.perf_counter()
    (res,) = ex.train_experts(cfg, progress=False)
    assert res.skipped and res.record == first.record
    assert time.perf_counter() - t0 < 5


# (4) a stale temp folder is cleaned, an interrupted run leaves nothing ---------------------------
def test_stale_temp_folder_was_removed(lora_run):
    cfg, (res,), stale = lora_run
    assert not stale.exists() and not res.skipped
    assert [p.name for p in cfg.experts_dir.iterdir()] == sorted([TASK, ex.BASE_SCORES_FILE]) or \
        {p.name for p in cfg.experts_dir.iterdir()} == {TASK, ex.BASE_SCORES_FILE}


def test_interrupted_training_leaves_no_folder(tmp_path, tiny_base_dir, monkeypatch):
    cfg = _cfg(tmp_path, tiny_base_dir, LORA)

    def interrupted(model, tok, rows, train_cfg, out_dir, **kw):
        Path(out_dir).mkdir(parents=True)
        (Path(out_dir) / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(ex, "sft_train", interrupted)
    monkeypatch.setattr(ex.BaseScores, "get", lambda self, spec: {"score": 0.0})
    with pytest.raises(KeyboardInterrupt):
        ex.train_experts(cfg, progress=False)
    assert [p.name for p in cfg.experts_dir.iterdir()] == []


# (5) completion-only loss on exactly the tokens lm-eval scores -----------------------------------
def test_labels_mask_the_prompt_and_tokens_match_lm_eval(tiny_base_dir, tmp_path):
    import torch

    from memmcl_merge.data import load_docs
    from memmcl_merge.evaluation import Evaluator, resolve_tasks
    from memmcl_merge.lm_tasks import load_dataset
    from memmcl_merge.models import load_model_and_tokenizer

    train = LORA.model_copy(update={"num_demos": 1, "max_examples": 8})
    rows = ex.task_train_rows(TASK, "embedded", train)
    # Demonstrations come from the train split only, one per prompt.
    train_texts = {d["text"] for d in load_docs(TASK, "train", "embedded")}
    assert all(r["prompt"].count("Answer:") == 2 for r in rows)
    assert all(r["prompt"].split("\n\n")[1].split("\n")[0].removeprefix("Tweet: ") in train_texts for r in rows)
    # The lm-eval dataset hook builds the very same prompt for a doc.
    hook = load_dataset(TASK, data="embedded", split="train", num_demos=1, seed=train.seed)["test"]
    docs = load_docs(TASK, "train", "embedded")
    by_text = {d["text"]: r for d, r in zip(docs, hook)}
    assert len(by_text) == len(docs)

    model, tok = load_model_and_tokenizer(str(tiny_base_dir))
    trainer, dropped = ex.make_trainer(model, tok, rows, train, tmp_path, sequential=True, progress=False)
    # fp32 on a CPU, bf16 on a bf16 GPU (dtype auto); the CPU is forced only where there is no GPU
    assert dropped == 0 and trainer.args.bf16 is (ex.resolve_precision(train) == "bf16")
    assert trainer.args.gradient_checkpointing is False
    assert trainer.args.use_cpu is not torch.cuda.is_available()
    assert trainer.args.report_to in ([], "none", ["none"])
    batch = next(iter(trainer.get_train_dataloader()))
    lm = Evaluator(resolve_tasks(TASK), split="dev", limit=1).wrap(model, tok)
    for i, row in enumerate(rows):
        ctx, cont = lm._encode_pair(row["prompt"], row["completion"])
        ids, labels = batch["input_ids"][i].tolist(), batch["labels"][i].tolist()
        n = len(ctx) + len(cont) + 1
        assert ids[:n] == ctx + cont + [tok.eos_token_id]
        assert labels[:len(ctx)] == [-100] * len(ctx)  # the prompt is masked
        assert labels[len(ctx):n] == cont + [tok.eos_token_id]  # " answer" + EOS is trained on
        assert all(v == -100 for v in labels[n:])  # padding is masked
        assert tok.decode(cont).strip() in ("negative", "neutral", "positive")
    # Rows too long for max_length are dropped (TRL would cut the answer off), never truncated.
    short = train.model_copy(update={"max_length": 16})
    with pytest.raises(ValueError, match="longer than max_length=16"):
        ex.make_trainer(model, tok, rows, short, tmp_path)


# (6) clear config errors -------------------------------------------------------------------------
@pytest.mark.parametrize("yaml_text, needle", [
    ("tasks: [sst2]\nexperts:\n  tasks: [nope]\n", "nope"),
    ("experts:\n  train:\n    learning_rate: -1\n", "experts.train.learning_rate"),
    ("experts:\n  train:\n    method: qlora\n", "experts.train.method"),
    ("experts:\n  train:\n    batch_sizes: 4\n", "experts.train.batch_sizes"),
])
def test_invalid_config_is_a_clear_config_error(tmp_path, yaml_text, needle):
    path = tmp_path / "run.yml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_config(path)


def test_cli_reports_errors_and_prints_the_table(tmp_path, lora_run):
    from click.testing import CliRunner

    from memmcl_merge.cli import main

    runner = CliRunner()
    bad = tmp_path / "bad.yml"
    bad.write_text("experts:\n  train:\n    learning_rate: -1\n")
    res = runner.invoke(main, ["experts", str(bad)])
    assert res.exit_code != 0 and "experts.train.learning_rate" in res.output and "Traceback" not in res.output

    missing = tmp_path / "missing.yml"
    missing.write_text(f"base_model: {tmp_path / 'no-such-model'}\noutput_dir: {tmp_path / 'o'}\ntasks: [{TASK}]\n")
    res = runner.invoke(main, ["experts", str(missing)])
    assert res.exit_code != 0 and "ModelNotFoundError" in res.output

    cfg, _, _ = lora_run
    good = tmp_path / "good.yml"
    good.write_text(json.dumps({"output_dir": str(cfg.output_dir), "base_model": cfg.base_model, "tasks": [TASK],
                                "experts": cfg.experts.model_dump(mode="json")}))
    res = runner.invoke(main, ["experts", str(good), "--quiet", "--tasks", TASK])
    assert res.exit_code == 0, res.output
    assert "| task | examples | steps | ex/s | dev before | dev after | folder |" in res.output
    assert f"| {TASK} | 32 | 4 |" in res.output and "(existing)" in res.output
    res = runner.invoke(main, ["experts", str(good), "--tasks", "sst2"])
    assert res.exit_code != 0 and "not among the config's expert tasks" in res.output


def test_a_complete_expert_trained_with_other_settings_is_kept_with_a_warning_naming_them(tmp_path, caplog):
    cfg = RunConfig(tasks=["sst2"], data="embedded", output_dir=str(tmp_path / "run"))
    folder = ex.expert_folder(cfg, "sst2")
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / ex.MARKER).write_text(json.dumps({"config": cfg.experts.model_dump(mode="json")}))
    with caplog.at_level("WARNING"):
        assert ex.train_expert(cfg, "sst2", progress=False).skipped
    assert "different experts config" not in caplog.text  # same settings: no warning
    edited = cfg.model_copy(update={"experts": cfg.experts.model_copy(update={"dev_limit": 7})})
    with caplog.at_level("WARNING"):
        assert ex.train_expert(edited, "sst2", progress=False).skipped
    assert "different experts config (differs in: dev_limit)" in caplog.text


def test_a_record_that_predates_a_setting_at_its_default_is_unchanged_and_a_non_default_one_differs():
    from memmcl_merge.config import changed_settings

    cfg = ExpertsConfig()
    old = cfg.model_dump(mode="json")
    del old["train"]["sampling"]  # an expert trained before training rows had a sampling setting
    assert changed_settings(old, cfg) == []
    proportional = cfg.model_copy(update={"train": cfg.train.model_copy(update={"sampling": "proportional"})})
    assert changed_settings(old, proportional) == ["train"]
    assert "gone" in changed_settings({**old, "gone": 1}, cfg)  # a removed setting still shows


@pytest.mark.parametrize("sampling", ["balanced", "proportional"])
def test_training_rows_follow_the_sampling_setting(sampling):
    from collections import Counter

    from memmcl_merge.data import load_docs

    train = TrainConfig(max_examples=24, sampling=sampling)
    rows = ex.task_train_rows("tweet_offensive", "embedded", train)
    got = Counter(r["completion"].strip() for r in rows)
    pool = Counter(d["label"] for d in load_docs("tweet_offensive", "train", "embedded"))
    share = pool["offensive"] / sum(pool.values())
    want = 12 if sampling == "balanced" else round(24 * share)
    assert len(rows) == 24 and got["offensive"] == want, (got, want, share)


# (5) a killed training resumes from its newest checkpoint ---------------------------------------------
class _Killed(Exception):
    pass


def _kill_at(step: int):
    from transformers import TrainerCallback

    class KillAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise _Killed(step)

    return KillAt()


def _step_counter():
    from transformers import TrainerCallback

    class Count(TrainerCallback):
        steps = 0

        def on_step_end(self, args, state, control, **kwargs):
            self.steps += 1

    return Count()


@pytest.mark.parametrize("method,sequential", [("lora", True), ("full", False)])
def test_a_killed_training_resumes_from_its_checkpoint_to_the_uninterrupted_result(
        tmp_path, tiny_base_dir, method, sequential):
    # dropout on, so the restored RNG state matters as well as the weights, optimiser and schedule
    train = LORA.model_copy(update={"method": method, "learning_rate": 3e-3, "max_examples": 48,
                                    "batch_size": 4, "lora": LoraConfig(r=4, alpha=8, dropout=0.1),
                                    "checkpoint_minutes": 1e-9})  # a checkpoint after every step
    rows = ex.task_train_rows(TASK, "embedded", train)
    whole = ex.sft_train(str(tiny_base_dir), None, rows, train, None, sequential=sequential, progress=False)
    assert whole.steps == 12

    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Killed):
        ex.sft_train(str(tiny_base_dir), None, rows, train, None, sequential=sequential, progress=False,
                     checkpoint_dir=ckpt, callbacks=[_kill_at(7)])
    # killed in step 7 before its save: step 6's checkpoint is the newest, and only it is kept
    assert sorted(p.name for p in ckpt.glob("checkpoint-*")) == ["checkpoint-6"]
    (ckpt / "checkpoint-9").mkdir()  # a save cut short by the kill (no trainer_state.json): ignored
    counter = _step_counter()
    resumed = ex.sft_train(str(tiny_base_dir), None, rows, train, None, sequential=sequential, progress=False,
                           checkpoint_dir=ckpt, callbacks=[counter])
    assert counter.steps == 6 and resumed.resumed_from_step == 6  # it trained steps 7-12 only
    assert whole.resumed_from_step is None
    assert resumed.steps == 12 and not (ckpt / "checkpoint-9").exists()
    assert [s for s, _ in resumed.loss_history] == list(range(1, 13))  # steps 1-6 logged before the kill
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-5
    moved = max((a[k].float() - v.float()).abs().max().item()
                for k, v in ex._load(str(tiny_base_dir), "fp32", "full")[0].state_dict().items())
    assert moved > 1e-3  # the training did change the weights, so equality above means something

    # other settings: the old checkpoints are not resumed from, they are removed
    other = train.model_copy(update={"learning_rate": 1e-3})
    with pytest.raises(_Killed):
        ex.sft_train(str(tiny_base_dir), None, rows, other, None, sequential=sequential, progress=False,
                     checkpoint_dir=ckpt, callbacks=[_kill_at(2)])
    assert sorted(p.name for p in ckpt.glob("checkpoint-*")) == ["checkpoint-1"]
    # the checkpoint interval is not a training setting: changing it keeps the checkpoints
    slower = other.model_copy(update={"checkpoint_minutes": 30.0})
    counter = _step_counter()
    res = ex.sft_train(str(tiny_base_dir), None, rows, slower, None, sequential=sequential, progress=False,
                       checkpoint_dir=ckpt, callbacks=[counter])
    assert res.steps == 12 and counter.steps == 11
