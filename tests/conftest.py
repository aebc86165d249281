"""Shared fixtures: tiny random Llama models with a tokenizer trained locally (no hub access)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models gain nothing from threads, and on a shared 2-core machine competing OpenMP threads
# make them many times slower; subprocesses started by tests inherit this too.
os.environ.setdefault("OMP_NUM_THREADS", "1")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

needs_shared_data = pytest.mark.skipif(not (SHARED_DATA / "tasks.json").is_file(),
                                       reason=f"real data not present at {SHARED_DATA}")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Keep the embedded corpus and model cache of the test run out of the user's cache."""
    if "MEMMCL_CACHE" not in os.environ or os.environ.get("MEMMCL_TEST_KEEP_CACHE") != "1":
        os.environ["MEMMCL_CACHE"] = str(tmp_path_factory.mktemp("memmcl-cache"))
    yield


def build_tokenizer(texts, vocab_size: int = 600):
    """A byte-level BPE tokenizer trained on ``texts`` in well under a second."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=1,
                            special_tokens=["<|endoftext|>", "<pad>"], show_progress=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>",
                                  bos_token="<|endoftext|>", pad_token="<pad>", unk_token="<|endoftext|>")
    return tok


def build_tiny_llama(tok, seed: int = 0, layers: int = 4, hidden: int = 64):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=1024, tie_word_embeddings=False,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    return LlamaForCausalLM(cfg)


def corpus_texts():
    from memmcl_merge.data import load_docs
    from memmcl_merge.tasks import TASKS

    texts = []
    for spec in TASKS.values():
        for d in load_docs(spec, "train", "embedded"):
            texts.append(spec.prompt(d) + " " + spec.answer(d))
    return texts


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tokenizer(corpus_texts())


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A saved tiny random Llama base model folder (fp32) with its tokenizer."""
    out = tmp_path_factory.mktemp("tiny-base")
    model = build_tiny_llama(tiny_tokenizer)
    model.save_pretrained(out)
    tiny_tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def disagreeing_experts(tmp_path_factory, tiny_base_dir):
    """A trained tweet_offensive expert (the tiny model learns it in seconds) and its anti-expert
    (base - task vector), saved under the name tweet_irony: merged 1:1 they cancel out."""
    import torch

    from memmcl_merge.config import TrainConfig
    from memmcl_merge.experts import save_plain_model, sft_train, task_train_rows
    from memmcl_merge.models import load_model_and_tokenizer

    root = tmp_path_factory.mktemp("evolve-run")
    cfg = TrainConfig(method="full", learning_rate=3e-3, batch_size=16, max_examples=256, epochs=3,
                      save_dtype="float32", dtype="float32", warmup_ratio=0.0)
    rows = task_train_rows("tweet_offensive", "embedded", cfg)
    res = sft_train(str(tiny_base_dir), None, rows, cfg, root / "experts" / "tweet_offensive", progress=False)
    base, tok = load_model_and_tokenizer(str(tiny_base_dir))
    expert = res.model
    with torch.no_grad():
        for (name, b), e in zip(base.state_dict().items(), expert.state_dict().values()):
            b.copy_(2 * b - e)
    save_plain_model(base, tok, root / "experts" / "tweet_irony", "float32")
    return root


def mergekit_yaml_tensors(recipe: Path, out: Path) -> dict:
    """Run the real ``mergekit-yaml`` console script of this environment on ``recipe`` into ``out``
    (offline) and return every tensor it wrote; fails the test with mergekit's stderr if it fails."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    exe = Path(sys.executable).with_name("mergekit-yaml")
    proc = subprocess.run([str(exe), str(recipe), str(out), "--copy-tokenizer"], capture_output=True, text=True,
                          timeout=300, check=False, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    tensors = {}
    for f in out.glob("*.safetensors"):
        tensors.update(load_file(str(f)))
    return tensors
