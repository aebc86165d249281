"""The ``memmcl`` merge method: the real ``mergekit-yaml`` against plain torch and the in-process path,
the start-up hook, error messages and the shipped recipes.

Tiny random Llama models (4 layers, hidden 32) are built here; nothing touches the Hub.
Tolerance against the hand computation: ``rtol=1e-5, atol=1e-6`` (all merges in float32,
``dtype: float32``). The in-process path must match ``mergekit-yaml`` bit for bit (``torch.equal``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
RTOL, ATOL = 1e-5, 1e-6
N_LAYERS = 4
EXPERTS = ("a", "b", "c")

# -- the merges under test (the params structure of memmcl_merge.recipes / inprocess) -------------
PLAIN = {  # no sparsification; per-layer gradients and filters
    "scale": 0.8,
    "experts": {
        "a": {"weight": [0.2, 0.6]},
        "b": {"weight": [0.5, 0.1, 0.3]},
        "c": {"weight": [{"filter": "lm_head", "value": 0.9},
                         {"filter": "embed_tokens", "value": 0.05},
                         {"filter": "norm", "value": 0.0},
                         {"value": [0.25, 0.35]}]},
    },
}
TIES = {  # magnitude top-k + sign consensus + normalize; dense embeddings / lm_head via filters
    "consensus": True,
    "normalize": True,
    "sparsify_method": "magnitude",
    "density": [{"filter": "embed_tokens", "value": 1.0}, {"filter": "lm_head", "value": 1.0},
                {"value": 0.5}],
    "experts": {
        "a": {"weight": 1.0, "density": [0.3, 0.9]},
        "b": {"weight": 0.7},
        "c": {"weight": [0.4, 1.2]},
    },
}
DARE = {  # random drop + rescale with a seed
    "sparsify_method": "dare",
    "seed": 1234,
    "scale": 1.1,
    "experts": {
        "a": {"weight": 0.5, "density": 0.6},
        "b": {"weight": 0.3, "density": [0.4, 0.9]},
        "c": {"weight": 0.4, "density": 1.0},
    },
}
CASES = {"plain": PLAIN, "ties": TIES, "dare": DARE}


# -- fixtures ---------------------------------------------------------------------------------------

def _config(**overrides):
    from transformers import LlamaConfig

    kw = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": N_LAYERS, "num_attention_heads": 4,
          "num_key_value_heads": 2, "vocab_size": 128, "tie_word_embeddings": False}
    kw.update(overrides)
    return LlamaConfig(**kw)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """base, experts a/b/c (base + noise) and 'wide' (intermediate_size 48), saved as fp32 folders."""
    from transformers import LlamaForCausalLM

    root = tmp_path_factory.mktemp("memmcl-models")
    torch.manual_seed(0)
    base = LlamaForCausalLM(_config())
    base.save_pretrained(root / "base")
    base_sd = {k: v.detach().clone() for k, v in base.state_dict().items()}
    paths = {"base": root / "base"}
    for i, name in enumerate(EXPERTS):
        g = torch.Generator().manual_seed(100 + i)
        noisy = {k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in base_sd.items()}
        base.load_state_dict(noisy)
        base.save_pretrained(root / name)
        paths[name] = root / name
    torch.manual_seed(1)
    LlamaForCausalLM(_config(intermediate_size=48)).save_pretrained(root / "wide")
    paths["wide"] = root / "wide"
    return paths


def _load(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


def _run_mergekit_yaml(recipe: Path, out: Path) -> subprocess.CompletedProcess:
    exe = VENV_BIN / "mergekit-yaml"
    assert exe.is_file(), f"mergekit-yaml not found next to {sys.executable}"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.run([str(exe), str(recipe), str(out), "--no-copy-tokenizer", "--quiet"],
                          check=False, capture_output=True, text=True, env=env, cwd=recipe.parent, timeout=300)


@pytest.fixture(scope="module")
def cli_merges(models, tmp_path_factory) -> dict[str, Path]:
    """Every case merged by the real ``mergekit-yaml`` console script (fresh processes, in parallel)."""
    from memmcl_merge.recipes import write_recipe

    root = tmp_path_factory.mktemp("memmcl-cli")
    experts = {name: models[name] for name in EXPERTS}
    jobs = {}
    for case, params in CASES.items():
        recipe = write_recipe(root / f"{case}.yml", models["base"], experts, params, dtype="float32",
                              comment=f"test case {case}")
        jobs[case] = (recipe, root / f"out-{case}")
    with ThreadPoolExecutor(max_workers=2) as pool:  # 2 cores
        results = dict(zip(jobs, pool.map(lambda job: _run_mergekit_yaml(*job), jobs.values())))
    for case, proc in results.items():
        assert proc.returncode == 0, f"mergekit-yaml failed for {case}:\n{proc.stderr[-4000:]}"
    return {case: out for case, (_, out) in jobs.items()}


# -- an independent hand computation ---------------------------------------------------------------

def _t(name: str) -> float:
    m = re.search(r"\.layers\.(\d+)\.", name)
    return int(m.group(1)) / (N_LAYERS - 1) if m else 0.0


def _setting(value, name: str, t: float):
    if isinstance(value, list) and value and isinstance(value[0], dict):
        for cond in value:
            if cond.get("filter") is None or cond["filter"] in name:
                return _setting(cond["value"], name, t)
        return None
    if isinstance(value, list):
        return float(np.interp(t, np.linspace(0.0, 1.0, len(value)), value))
    return value


def _param(params: dict, expert: str, key: str, name: str, default):
    own = params.get("experts", {}).get(expert, {})
    for source in (own, params):
        if key in source and (value := _setting(source[key], name, _t(name))) is not None:
            return value
    return default


def _hand_merge(sds: dict[str, dict[str, torch.Tensor]], params: dict) -> dict[str, torch.Tensor]:
    from memmcl_merge.merge_methods.memmcl import tensor_seed  # the documented DARE seeding contract

    out = {}
    for name, base in sds["base"].items():
        weighted, weights = [], []
        for i, expert in enumerate(EXPERTS):
            delta = sds[expert][name].float() - base.float()
            w = float(_param(params, expert, "weight", name, None))
            d = float(_param(params, expert, "density", name, 1.0))
            if d < 1.0 and params.get("sparsify_method", "magnitude") == "magnitude":
                k = max(1, int(d * delta.numel()))
                keep = torch.zeros(delta.numel(), dtype=torch.bool)
                keep[torch.argsort(delta.abs().flatten(), descending=True, stable=True)[:k]] = True
                delta = delta * keep.reshape(delta.shape)
            elif d < 1.0:
                g = torch.Generator().manual_seed(tensor_seed(params["seed"], name, i))
                delta = delta * (torch.rand(delta.shape, generator=g) < d) / d
            weighted.append(w * delta)
            weights.append(w)
        stacked = torch.stack(weighted)
        w = torch.tensor(weights).reshape(-1, *([1] * base.dim()))
        if params.get("consensus"):
            elected = torch.where(stacked.sum(0) >= 0, 1.0, -1.0)
            agree = stacked.sign() == elected
            mixed = (stacked * agree).sum(0)
            divisor = (w * agree).sum(0)
            divisor[divisor == 0] = 1
        else:
            mixed = stacked.sum(0)
            divisor = w.sum()
        if params.get("normalize"):
            mixed = mixed / divisor
        out[name] = base.float() + params.get("scale", 1.0) * mixed
    return out


@pytest.fixture(scope="module")
def state_dicts(models) -> dict[str, dict[str, torch.Tensor]]:
    return {name: _load(models[name]) for name in ("base", *EXPERTS)}


# -- (a) + (b): the real mergekit-yaml against plain torch -------------------------------------------

@pytest.mark.parametrize("case", list(CASES))
def test_mergekit_yaml_matches_hand_computation(case, cli_merges, state_dicts):
    merged = _load(cli_merges[case])
    expected = _hand_merge(state_dicts, CASES[case])
    assert set(merged) == set(expected)
    for name, tensor in merged.items():
        assert tensor.dtype == torch.float32
        torch.testing.assert_close(tensor, expected[name], rtol=RTOL, atol=ATOL, msg=f"{case}: {name}")


def test_filters_and_gradients_reach_the_right_tensors(cli_merges, state_dicts):
    """Spot checks of mergekit's semantics that the hand computation encodes."""
    merged = _load(cli_merges["plain"])
    base, a, b, c = (state_dicts[k] for k in ("base", *EXPERTS))

    def expect(name, wa, wb, wc):
        return base[name] + 0.8 * (wa * (a[name] - base[name]) + wb * (b[name] - base[name])
                                   + wc * (c[name] - base[name]))

    # embeddings / lm_head / final norm sit at t = 0 (first gradient value) and take c's filters
    for name, wc in (("model.embed_tokens.weight", 0.05), ("lm_head.weight", 0.9), ("model.norm.weight", 0.0)):
        torch.testing.assert_close(merged[name], expect(name, 0.2, 0.5, wc), rtol=RTOL, atol=ATOL)
    # layer 2 of 4: t = 2/3; a: 0.2 -> 0.6, b: anchors 0.5, 0.1, 0.3 at t = 0, 0.5, 1
    name = "model.layers.2.mlp.up_proj.weight"
    wa, wb, wc = 0.2 + 0.4 * 2 / 3, 0.1 + 0.2 * (2 / 3 - 0.5) / 0.5, 0.25 + 0.1 * 2 / 3
    torch.testing.assert_close(merged[name], expect(name, wa, wb, wc), rtol=RTOL, atol=ATOL)
    # "norm" matches the layer norms too
    name = "model.layers.1.input_layernorm.weight"
    wa, wb = 0.2 + 0.4 / 3, 0.5 - 0.4 * (1 / 3) / 0.5
    torch.testing.assert_close(merged[name], expect(name, wa, wb, 0.0), rtol=RTOL, atol=ATOL)


def test_sparsification_really_sparsifies(cli_merges, state_dicts):
    base, c, merged = state_dicts["base"], state_dicts["c"], _load(cli_merges["dare"])
    name = "model.layers.0.self_attn.q_proj.weight"  # a keeps 60 %, b 40 % (t = 0), c everything
    rest = merged[name] - base[name] - 1.1 * 0.4 * (c[name] - base[name])  # a's and b's part
    dropped_by_both = float((rest.abs() < 1e-6).float().mean())
    assert 0.15 < dropped_by_both < 0.35  # expected 0.4 * 0.6 = 0.24


# -- (c): the in-process path gives the same tensors ----------------------------------------------

@pytest.mark.parametrize("case", list(CASES))
def test_inprocess_equals_mergekit_yaml(case, cli_merges, models):
    from memmcl_merge.merge_methods import MemmclMerger
    from memmcl_merge.recipes import read_recipe

    base, experts, params = read_recipe(cli_merges[case].parent / f"{case}.yml")
    assert Path(base) == models["base"] and list(experts) == list(EXPERTS)
    merger = MemmclMerger.from_paths(base, experts)
    merged = merger.merge(params)
    reference = _load(cli_merges[case])
    assert set(merged) == set(reference)
    differing = [name for name in reference if not torch.equal(merged[name], reference[name])]
    assert not differing, f"{case}: in-process differs from mergekit-yaml on {differing}"


def test_one_shot_state_dict_merge_and_dare_reproducibility(cli_merges, state_dicts):
    from memmcl_merge.merge_methods import compute_deltas, merge_state_dicts_memmcl

    base = state_dicts["base"]
    experts = {name: state_dicts[name] for name in EXPERTS}
    reference = _load(cli_merges["dare"])
    first = merge_state_dicts_memmcl(base, experts, DARE)  # positions from tensor names
    again = merge_state_dicts_memmcl(base, compute_deltas(base, experts), DARE, deltas_precomputed=True)
    for name in reference:
        assert torch.equal(first[name], reference[name]) and torch.equal(again[name], reference[name]), name
    other = merge_state_dicts_memmcl(base, experts, {**DARE, "seed": 99})
    assert not torch.equal(other["model.layers.0.self_attn.q_proj.weight"],
                           reference["model.layers.0.self_attn.q_proj.weight"])


def test_positions_follow_mergekit_architecture(models, state_dicts):
    from transformers import AutoConfig

    from memmcl_merge.merge_methods import positions_from_config, tensor_positions

    by_arch = positions_from_config(AutoConfig.from_pretrained(models["base"]), names=state_dicts["base"])
    by_name = tensor_positions(state_dicts["base"])
    assert {k: by_arch[k] for k in by_name} == by_name
    assert by_name["lm_head.weight"] == 0.0 and by_name["model.layers.3.mlp.up_proj.weight"] == 1.0


def test_magnitude_mask_is_exact_k_with_ties():
    from memmcl_merge.merge_methods.memmcl import magnitude_mask, sparsify_delta

    x = torch.tensor([[0.5, -0.5, 0.1, 0.5], [0.0, -0.5, 2.0, 0.1]])
    keep = magnitude_mask(x, 0.5)  # k = 4: 2.0, then the first three of the four 0.5s
    assert keep.sum() == 4 and keep[1, 2] and keep[0, 0] and keep[0, 1] and keep[0, 3] and not keep[1, 1]
    assert torch.equal(sparsify_delta(x, 1.0, "magnitude"), x)
    assert torch.equal(sparsify_delta(x, 0.0, "dare"), torch.zeros_like(x))


def test_ranked_sparsify_equals_the_selection_pass_on_tie_heavy_deltas():
    from memmcl_merge.merge_methods.memmcl import magnitude_ranking, sparsify_delta

    gen = torch.Generator().manual_seed(0)
    for trial in range(20):
        # few distinct values and many exact zeros, as task vectors of bf16-saved experts have
        x = torch.randint(-6, 7, (37, 23), generator=gen).float() / 8
        x[torch.rand(x.shape, generator=gen) < 0.6] = 0.0
        ranking = magnitude_ranking(x)
        for density in (0.01, 0.1, 0.2, 0.33, 0.5, 0.77, 0.99):
            slow = sparsify_delta(x, density, "magnitude")
            fast = sparsify_delta(x, density, "magnitude", ranking=ranking)
            assert torch.equal(slow, fast) and torch.equal(slow.signbit(), fast.signbit()), (trial, density)


# -- (d): registration without importing memmcl_merge explicitly ------------------------------------

def _python(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, *args], check=False, capture_output=True, text=True, env=env, timeout=120,
                          cwd=str(Path.home()) if Path.home().is_dir() else "/")


def test_pth_file_is_installed():
    pth = Path(sysconfig.get_paths()["purelib"]) / "memmcl_merge.pth"
    assert pth.is_file(), f"{pth} missing: run `pip install -e . --no-deps` (or install the wheel)"
    assert pth.read_text().strip() == "import memmcl_merge._mergekit_hook"


def test_startup_imports_neither_torch_nor_mergekit():
    proc = _python("-X", "importtime", "-c", "pass")
    modules = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line]
    assert "memmcl_merge._mergekit_hook" in modules, "the .pth hook did not run at start-up"
    heavy = [m for m in modules if m.split(".")[0] in ("torch", "mergekit", "transformers", "numpy")
             or m.startswith("memmcl_merge.merge_methods")]
    assert not heavy, f"start-up imported {heavy}"


def test_plain_mergekit_sees_memmcl():
    code = ("import sys, mergekit.merge_methods.registry as r\n"
            "m = r.get('memmcl')\n"
            "print(type(m).__module__, 'memmcl_merge.merge_methods' in sys.modules,"
            " sum(x.spec.name == 'memmcl' for x in r.registered_methods()))\n")
    proc = _python("-W", "error::RuntimeWarning", "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["memmcl_merge.merge_methods.memmcl", "True", "1"]


def test_registration_when_memmcl_merge_imports_mergekit_itself():
    """Importing our heavy module first makes *it* import mergekit.merge_methods, inside the hook's
    window; registration must still happen exactly once, with no warning."""
    code = ("import memmcl_merge.merge_methods.inprocess\n"
            "import mergekit.merge_methods as m\n"
            "print(sum(x.spec.name == 'memmcl' for x in m.registered_methods()))\n")
    proc = _python("-W", "error::RuntimeWarning", "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1"]


def test_register_methods_is_idempotent():
    from mergekit.merge_methods import registry

    from memmcl_merge import _mergekit_hook
    from memmcl_merge.merge_methods import memmcl_merge_method, register_methods

    assert register_methods() == [] and register_methods() == []
    assert _mergekit_hook.register_method(memmcl_merge_method) is False
    assert registry.get("memmcl") is memmcl_merge_method
    assert not _mergekit_hook.installed()  # the finder removed itself once mergekit was loaded


# -- (e): clear errors ------------------------------------------------------------------------------

def _run_merge(config: dict, out: Path) -> None:
    """The mergekit-yaml code path, in this process (cheaper than a subprocess for failures)."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    run_merge(MergeConfiguration.model_validate(config), str(out),
              options=MergeOptions(copy_tokenizer=False, write_model_card=False, quiet=True))


def _memmcl_config(models, experts: list, params: dict) -> dict:
    from memmcl_merge.recipes import render_recipe

    return yaml.safe_load(render_recipe(models["base"], {k: models[k] for k in experts}, params))


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_density_out_of_range(bad, models, state_dicts, tmp_path):
    from memmcl_merge.merge_methods import MemmclMerger

    params = {"experts": {"a": {"weight": 0.5}, "b": {"weight": 0.5, "density": bad}}}
    merger = MemmclMerger(state_dicts["base"], {k: state_dicts[k] for k in ("a", "b")})
    with pytest.raises(ValueError, match=rf"density for model 'b' must be in \[0, 1\], got {bad}"):
        merger.merge(params)
    with pytest.raises(ValueError, match=rf"density for model '{re.escape(str(models['b']))}' must be in "
                                         rf"\[0, 1\], got {bad}"):
        _run_merge(_memmcl_config(models, ["a", "b"], params), tmp_path / "out")


def test_shape_mismatch_names_tensor_and_models(models, tmp_path):
    from memmcl_merge.merge_methods import MemmclMerger, MergeShapeError

    with pytest.raises(MergeShapeError, match=r"tensor model\.layers\.\d\.mlp\.\w+_proj\.weight has shape "
                                              r"\(\d+, \d+\) in model 'wide' but \(\d+, \d+\) in the base"):
        MemmclMerger.from_paths(models["base"], {"a": models["a"], "wide": models["wide"]})
    config = _memmcl_config(models, ["a", "wide"], {"weight": 0.5})
    with pytest.raises(MergeShapeError) as info:
        _run_merge(config, tmp_path / "out")
    message = str(info.value)
    assert "mlp" in message and str(models["wide"]) in message and str(models["base"]) in message


def test_missing_base_model_path(models, tmp_path):
    from memmcl_merge.merge_methods import MemmclMerger
    from memmcl_merge.recipes import check_recipe, write_recipe

    missing = tmp_path / "runs" / "default" / "base"
    with pytest.raises(FileNotFoundError, match="base model path does not exist"):
        MemmclMerger.from_paths(missing, {"a": models["a"]})
    recipe = write_recipe(tmp_path / "r.yml", "runs/default/base", {"a": models["a"]}, {"weight": 1.0})
    with pytest.raises(FileNotFoundError, match=r"base model path does not exist: runs/default/base"):
        check_recipe(recipe, root=tmp_path)
    config = yaml.safe_load(recipe.read_text())
    config["base_model"] = str(missing)
    with pytest.raises(OSError, match=re.escape(str(missing))):  # mergekit's own message names the path
        _run_merge(config, tmp_path / "out")


# -- recipes ----------------------------------------------------------------------------------------

RECIPES = sorted((REPO / "recipes").rglob("*.yml"))


def test_recipes_exist():
    names = {p.relative_to(REPO / "recipes").as_posix() for p in RECIPES}
    assert {"stage1_sc.yml", "stage1_absa.yml", "stage1_mast.yml", "stage2.yml", "baselines/linear.yml",
            "baselines/task_arithmetic.yml", "baselines/ties.yml", "baselines/dare_ties.yml"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_is_valid_mergekit_yaml(recipe, tmp_path):
    import mergekit.merge_methods as methods
    from mergekit.config import MergeConfiguration

    from memmcl_merge.merge_methods import resolve_tensor_params
    from memmcl_merge.recipes import check_recipe, read_recipe, recipe_models

    config = yaml.safe_load(recipe.read_text())
    MergeConfiguration.model_validate(config)
    methods.get(config["merge_method"])
    for _, path in recipe_models(config):
        assert path.startswith("runs/default/"), path
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_recipe(recipe, root=tmp_path)
    if config["merge_method"] == "memmcl":
        _, experts, params = read_recipe(recipe)
        for name in ("model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                     "model.layers.5.mlp.up_proj.weight", "lm_head.weight"):
            p = resolve_tensor_params(params, list(experts), name, t=0.5)
            assert all(0 < w < 2 for w in p.weights) and all(0 < d <= 1 for d in p.densities)
            if "mlp" not in name:
                assert set(p.densities) == {1.0}  # embeddings, norms and lm_head stay dense


def test_write_recipe_is_atomic_and_round_trips(tmp_path):
    from memmcl_merge.recipes import read_recipe, write_recipe

    params = {"scale": np.float32(0.5), "consensus": True,
              "experts": {"x": {"weight": np.array([0.1, 0.2]), "density": 0.9}, "y": {"weight": 0.3}}}
    target = write_recipe(tmp_path / "sub" / "best.yml", "runs/default/base",
                          {"x": "runs/default/experts/x", "y": "runs/default/experts/y"}, params)
    assert [p.name for p in target.parent.iterdir()] == ["best.yml"]  # no temp file left behind
    base, experts, back = read_recipe(target)
    assert base == "runs/default/base" and experts == {"x": "runs/default/experts/x", "y": "runs/default/experts/y"}
    assert back == {"scale": 0.5, "consensus": True,
                    "experts": {"x": {"weight": [0.1, 0.2], "density": 0.9}, "y": {"weight": 0.3}}}
    with pytest.raises(ValueError, match="no weight"):
        write_recipe(tmp_path / "bad.yml", "b", {"x": "x"}, {})
    with pytest.raises(ValueError, match="unknown expert"):
        write_recipe(tmp_path / "bad.yml", "b", {"x": "x"}, {"weight": 1.0, "experts": {"z": {"weight": 1}}})
