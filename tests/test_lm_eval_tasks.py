"""The sentiment_* tasks run under lm-eval: in-process and through the real `lm_eval` command."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA, needs_shared_data

from memmcl_merge.evaluation import (
    EvaluationError,
    Evaluator,
    choice_loglikelihoods,
    format_table,
    resolve_tasks,
)
from memmcl_merge.lm_tasks import evals_dir, load_dataset


def test_resolve_tasks_groups_and_names():
    assert [t.name for t in resolve_tasks("ABSA")] == ["aste_lap14", "aste_res14"]
    assert [t.name for t in resolve_tasks("sentiment_sst2,sst2,tweet_irony")] == ["sst2", "tweet_irony"]
    assert len(resolve_tasks("all")) == 12


def test_dataset_hook_demos_come_from_train_only(monkeypatch):
    ds = load_dataset("sst2", data="embedded", split="test", limit=6, num_demos=2, version=1.0)
    rows = ds["test"]
    assert len(rows) == 6
    assert rows[0]["prompt"].count("Answer:") == 3  # two solved demos + the query
    from memmcl_merge.data import load_docs

    test_texts = {d["text"] for d in load_docs("sst2", "test", "embedded")}
    for r in rows:
        demo_part = r["prompt"].rsplit("\n\n", 1)[0]
        assert not any(t in demo_part for t in test_texts if len(t) > 25)


def test_in_process_evaluation_classification_and_generation(tiny_base_dir):
    from memmcl_merge.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(str(tiny_base_dir))
    ev = Evaluator(resolve_tasks("sst2,tweet_irony,aste_res14"), split="dev", limit=6, batch_size=8)
    lm = ev.wrap(model, tok)
    scores = ev.evaluate(lm)
    assert set(scores) == {"sst2", "tweet_irony", "aste_res14"}
    assert 0.0 <= scores["sst2"]["acc"] <= 1.0 and "p_gold" in scores["tweet_irony"]
    assert "macro_f1" in scores["sst2"]  # the macro_mix fitness reads it on accuracy tasks too
    assert scores["tweet_irony"]["score"] == scores["tweet_irony"]["macro_f1"]
    assert scores["aste_res14"]["score"] == scores["aste_res14"]["micro_f1"]
    # Weights changed in place are seen by the same task objects and LM wrapper.
    import torch

    with torch.no_grad():
        model.lm_head.weight.mul_(-3.0)
    again = ev.evaluate(lm)
    assert again["sst2"]["p_gold"] != scores["sst2"]["p_gold"]
    assert "sst2" in format_table({"tiny": scores})


def _loglikelihoods(ev, lm) -> dict:
    return {name: choice_loglikelihoods(samples) for name, samples in ev.logged_samples(lm)[1].items()}


def test_answer_window_scores_exactly_like_lm_eval(tiny_base_dir):
    """The answer-window LM returns the same log-likelihood for every choice as lm-eval's HFLM,
    on rows of different lengths in one batch and on multi-token labels (tweet_offensive); a
    window too short for an answer raises instead of scoring the wrong tokens."""
    from memmcl_merge.fast_lm import AnswerWindowHFLM
    from memmcl_merge.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(str(tiny_base_dir))
    ev = Evaluator(resolve_tasks("sst2,tweet_offensive,tweet_stance"), split="dev", limit=12, batch_size=5)
    fast = ev.wrap(model, tok)
    assert isinstance(fast, AnswerWindowHFLM)
    plain = ev.wrap(model, tok, answer_window=False)
    assert type(plain) is not AnswerWindowHFLM
    got, want = _loglikelihoods(ev, fast), _loglikelihoods(ev, plain)
    assert got.keys() == want.keys()
    for name in want:
        for g, w in zip(got[name], want[name], strict=True):
            assert g == pytest.approx(w, rel=1e-5, abs=1e-5), name
    short = AnswerWindowHFLM(pretrained=model, tokenizer=tok, batch_size=5, device="cpu", max_answer_tokens=1)
    # " not offensive" is two tokens here: a one-token window cannot hold it and must say so
    with pytest.raises(RuntimeError, match="longer than max_answer_tokens=1"):
        _loglikelihoods(ev, short)


def test_nan_scores_are_named(tiny_base_dir):
    import torch

    from memmcl_merge.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(str(tiny_base_dir))
    with torch.no_grad():
        model.lm_head.weight.fill_(float("nan"))
    ev = Evaluator(resolve_tasks("sst2"), split="dev", limit=4)
    with pytest.raises(EvaluationError, match="sentiment_sst2: metric"):
        ev.evaluate(ev.wrap(model, tok))


def _lm_eval_cli(args, env_extra=None, timeout=300):
    exe = Path(sys.executable).with_name("lm_eval")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)


def test_lm_eval_command_line_runs_a_sentiment_task(tiny_base_dir, tmp_path):
    out = tmp_path / "out"
    proc = _lm_eval_cli(["--model", "hf", "--model_args", f"pretrained={tiny_base_dir},dtype=float32",
                         "--include_path", str(evals_dir()), "--tasks", "sentiment_sst2",
                         "--metadata", json.dumps({"split": "dev", "limit": 8}),
                         "--device", "cpu", "--batch_size", "8", "--output_path", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sentiment_sst2" in proc.stdout and "score" in proc.stdout
    res = json.loads(next(out.rglob("results_*.json")).read_text())
    assert 0.0 <= res["results"]["sentiment_sst2"]["score,none"] <= 1.0


@needs_shared_data
def test_shared_data_is_reachable_from_the_dataset_hook():
    rows = load_dataset("tweet_stance", data=str(SHARED_DATA), split="test_500", limit=12)["test"]
    assert len(rows) == 12 and "Target:" in rows[0]["prompt"]


def test_a_limited_scoring_sample_keeps_the_split_label_shares():
    from memmcl_merge.data import load_docs
    from memmcl_merge.lm_tasks import load_dataset

    test = load_docs("tweet_offensive", "test", "embedded")
    share = sum(d["label"] == "offensive" for d in test) / len(test)
    for sampling, expect in (("proportional", round(20 * share)), ("balanced", 10)):
        rows = load_dataset("tweet_offensive", data="embedded", split="test", limit=20, sampling=sampling)["test"]
        got = sum(r["answer"] == "offensive" for r in rows)
        assert len(rows) == 20 and got == expect, (sampling, got, expect)
    assert round(20 * share) != 10  # the embedded split is not balanced, so the two differ


def test_evals_dir_falls_back_to_the_checkout_when_the_package_data_is_not_installed(monkeypatch):
    """A checkout used through PYTHONPATH alone (no pip install, as on a machine without a package
    index) has no ``memmcl_merge.evals`` module: the task folder is the checkout's evals/."""
    from importlib import resources

    installed = evals_dir()

    def not_installed(name):
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(resources, "files", not_installed)
    fallback = evals_dir()
    assert fallback == Path(__file__).resolve().parent.parent / "evals"
    assert sorted(p.name for p in fallback.glob("sentiment_*.yaml")) == sorted(
        p.name for p in installed.glob("sentiment_*.yaml"))
