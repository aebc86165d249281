"""The CMA-ES driver: genome, journal/resume, failures, and a real stage on tiny models."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import mergekit_yaml_tensors

from memmcl_merge.config import FitnessConfig
from memmcl_merge.evolve import (
    WORST_FITNESS,
    FitnessSpec,
    GenomeSpace,
    Journal,
    SearchBudget,
    run_search,
)

ROOT = Path(__file__).resolve().parents[1]


def test_genome_decode_encode_round_trip():
    space = GenomeSpace(("a", "b"), layer_groups=3, evolve_density=True, weight_range=(0.0, 2.0),
                        density_range=(0.5, 1.0))
    assert space.dim == 12
    x = space.encode(weight=1.0, density=0.75)
    params = space.decode(x)
    assert params["a"] == {"weight": [1.0, 1.0, 1.0], "density": [0.75, 0.75, 0.75]}
    scalar = GenomeSpace(("a",), layer_groups=1, evolve_density=False).decode([1.0])
    assert scalar == {"a": {"weight": 1.5, "density": 1.0}}
    with pytest.raises(ValueError, match="expected 12"):
        space.decode([0.5])
    # out-of-bounds genes are clipped, never passed on
    assert GenomeSpace(("a",), evolve_density=False).decode([7.0])["a"]["weight"] == 1.5


def test_start_weights_follow_the_experts_dev_gain(tmp_path):
    """expert_gap: an expert that gained twice the members' mean over the base on dev starts at twice
    the plain start weight; a member without recorded dev scores keeps the plain one."""
    from memmcl_merge.config import RunConfig
    from memmcl_merge.evolve import search_space

    cfg = RunConfig(output_dir=str(tmp_path), tasks=["sst2", "sst5", "tweet_irony"],
                    evolve={"search": {"layer_groups": 1, "evolve_density": False, "init_weight": 0.5,
                                       "weight_range": [0.0, 2.0], "start_weights": "expert_gap"},
                            "stages": [{"name": "stage1", "groups": {"g": ["sst2", "sst5", "tweet_irony"]}}]})
    for task, (expert, base) in {"sst2": (0.9, 0.5), "sst5": (0.4, 0.2)}.items():  # gains 0.4, 0.2
        (cfg.experts_dir / task).mkdir(parents=True)
        (cfg.experts_dir / task / "memmcl_expert.json").write_text(
            json.dumps({"dev": {"expert": {"score": expert}, "base": {"score": base}}}))
    plan = cfg.plan()[0]
    space, x0 = search_space(plan, cfg)
    weights = {m: p["weight"] for m, p in space.decode(x0).items()}
    assert weights == pytest.approx({"sst2": 0.5 * 0.4 / 0.3, "sst5": 0.5 * 0.2 / 0.3, "tweet_irony": 0.5}, abs=1e-5)
    uniform_space, uniform_x0 = search_space(plan._replace(search=plan.search.model_copy(
        update={"start_weights": "uniform"})))
    assert {p["weight"] for p in uniform_space.decode(uniform_x0).values()} == {0.5}
    with pytest.raises(ValueError, match="needs the run config"):
        search_space(plan)


def test_fitness_uses_smooth_metric_and_rejects_nan():
    fit = FitnessSpec("mix", {"b": 3.0})
    scores = {"a": {"score": 0.5, "p_gold": 0.7}, "b": {"score": 0.25}}
    assert fit(scores) == pytest.approx((0.6 + 3 * 0.25) / 4)
    assert fit({"a": {"score": float("nan"), "p_gold": 0.5}}) == WORST_FITNESS
    # a triplet task (no p_gold) counts its exact-match score unless partial credit is asked for
    triplets = {"t": {"score": 0.1, "partial_f1": 0.4}}
    assert FitnessSpec()(triplets) == pytest.approx(0.1)
    assert FitnessSpec(generation_metric="partial_f1")(triplets) == pytest.approx(0.4)
    # scaled to the best member per task; a task no member can do is divided by the floor, not by ~0
    members = {"m1": {"a": {"score": 0.8, "p_gold": 0.6}, "t": {"score": 0.0}},
               "m2": {"a": {"score": 0.4, "p_gold": 0.4}, "t": {"score": 0.01}}}
    scaled = FitnessSpec("mix").scaled_to(members)
    assert scaled.task_scale == pytest.approx({"a": 0.7, "t": 0.05})
    assert scaled({"a": {"score": 0.7, "p_gold": 0.7}, "t": {"score": 0.05}}) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="non-finite"):
        FitnessSpec("mix").scaled_to({"m": {"a": {"score": float("nan"), "p_gold": 0.5}}})
    # capped: a task past the cap cannot buy another task's loss
    capped = FitnessSpec("mix", cap=0.95).scaled_to(members)
    both_kept = {"a": {"score": 0.7, "p_gold": 0.7}, "t": {"score": 0.05}}
    one_traded = {"a": {"score": 1.0, "p_gold": 1.0}, "t": {"score": 0.04}}
    assert scaled(one_traded) > scaled(both_kept)
    assert capped(one_traded) < capped(both_kept) == pytest.approx(0.95)


def test_macro_mix_fitness_prices_a_lost_label():
    # Two candidates on an accuracy task: one keeps every label, one stops giving a label held by a
    # few rows and gains elsewhere. The accuracy mix ranks the collapsed one first; macro_mix does not.
    keeps = {"a": {"score": 0.60, "macro_f1": 0.58, "p_gold": 0.50}}
    collapsed = {"a": {"score": 0.64, "macro_f1": 0.45, "p_gold": 0.50}}
    assert FitnessSpec("mix")(collapsed) > FitnessSpec("mix")(keeps)
    assert FitnessSpec("macro_mix")(keeps) > FitnessSpec("macro_mix")(collapsed)
    assert FitnessSpec("macro_mix")(keeps) == pytest.approx((0.58 + 0.50) / 2)
    assert FitnessSpec("macro_f1")(keeps) == pytest.approx(0.58)
    # the run config's default reaches the search
    assert FitnessSpec.from_config(FitnessConfig())(collapsed) == FitnessSpec("mix")(collapsed)
    # on a macro-F1 task the official score is macro-F1 already: macro_mix and mix agree
    mast = {"b": {"score": 0.4, "macro_f1": 0.4, "p_gold": 0.6}}
    assert FitnessSpec("macro_mix")(mast) == FitnessSpec("mix")(mast)
    # a task that does not report the metric asked for is named, not scored as a KeyError
    with pytest.raises(ValueError, match="'macro_f1', which task 'c' does not report"):
        FitnessSpec("macro_mix")({"c": {"score": 0.5, "p_gold": 0.5}})


def test_fitness_config_reaches_the_spec():
    from memmcl_merge.config import RunConfig

    cfg = RunConfig(evolve={"fitness": {"generation_metric": "partial_f1"}})
    assert FitnessSpec.from_config(cfg.evolve.fitness).generation_metric == "partial_f1"
    with pytest.raises(ValueError, match="generation_metric"):
        RunConfig(evolve={"fitness": {"generation_metric": "f1"}})
    assert FitnessSpec.from_config(RunConfig(evolve={"fitness": {"scale": "best_member", "cap": 0.95}})
                                   .evolve.fitness).cap == 0.95
    with pytest.raises(ValueError, match="needs scale: best_member"):
        RunConfig(evolve={"fitness": {"cap": 0.95}})
    # a stage's own fitness replaces evolve.fitness for that stage's searches only
    staged = RunConfig(tasks=["sst2", "tweet_irony"], evolve={
        "fitness": {"task_weights": {"sst2": 2.0}},
        "stages": [{"name": "stage1", "groups": {"a": ["sst2"], "b": ["tweet_irony"]},
                    "fitness": {"classification_metric": "macro_mix"}},
                   {"name": "stage2", "groups": {"u": ["stage1/a", "stage1/b"]}}]})
    by_key = {p.key: p.fitness for p in staged.plan()}
    assert [by_key[k].classification_metric for k in ("stage1/a", "stage1/b", "stage2/u")] == \
        ["macro_mix", "macro_mix", "mix"]
    assert by_key["stage1/a"].task_weights == {} and by_key["stage2/u"].task_weights == {"sst2": 2.0}
    with pytest.raises(ValueError, match="classification_metric"):
        RunConfig(tasks=["sst2"], evolve={"stages": [{"name": "stage1", "groups": {"a": ["sst2"]},
                                                      "fitness": {"classification_metric": "f1"}}]})


def test_stage_alias_only_for_a_stage_of_one_search(tmp_path):
    """recipes/<stage>.yml copies a stage's recipe only when the plan gives that stage one search; a
    call that ran one search of a stage of several (side by side) writes none."""
    from memmcl_merge.config import RunConfig
    from memmcl_merge.evolve import _write_stage_aliases

    cfg = RunConfig(output_dir=tmp_path, tasks=["sst2", "tweet_irony"],
                    evolve={"stages": [{"name": "stage1", "groups": {"a": ["sst2"], "b": ["tweet_irony"]}},
                                       {"name": "stage2", "groups": {"u": ["stage1/a", "stage1/b"]}}]})
    for key in ("stage1_a", "stage2_u"):
        (tmp_path / f"{key}.yml").write_text(f"# {key}\n")
    _write_stage_aliases(cfg, {"stage1/a": {"recipe": str(tmp_path / "stage1_a.yml")}})
    assert not (tmp_path / "stage1.yml").exists()
    _write_stage_aliases(cfg, {"stage2/u": {"recipe": str(tmp_path / "stage2_u.yml")}})
    assert (tmp_path / "stage2.yml").read_text() == "# stage2_u\n"


def test_live_dtype_and_bad_dtype_config():
    import torch
    from pydantic import ValidationError

    from memmcl_merge.config import EvolveConfig
    from memmcl_merge.evolve import live_dtype

    assert live_dtype("float32") is torch.float32 and live_dtype("bfloat16") is torch.bfloat16
    assert live_dtype("auto") in (torch.float32, torch.bfloat16)
    with pytest.raises(ValidationError, match="dtype"):
        EvolveConfig(dtype="float16")


def test_memmcl_auto_dtype_fixes_what_auto_means_and_names_a_bad_value(monkeypatch):
    import torch

    from memmcl_merge.evolve import live_dtype

    for name, want in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        monkeypatch.setenv("MEMMCL_AUTO_DTYPE", name)
        assert live_dtype("auto") is want
    assert live_dtype("float32") is torch.float32  # an explicit dtype is not overridden
    monkeypatch.setenv("MEMMCL_AUTO_DTYPE", "float16")
    with pytest.raises(ValueError, match="MEMMCL_AUTO_DTYPE='float16'"):
        live_dtype("auto")


def _quadratic(params):
    """Peak at weight 0.9 for 'a' and 0.2 for 'b' (what a good merge search should find)."""
    wa, wb = params["a"]["weight"], params["b"]["weight"]
    return {"scores": {"t": {"score": 1.0 - (wa - 0.9) ** 2 - (wb - 0.2) ** 2}}}


def test_search_improves_and_survives_failed_candidates(tmp_path):
    space = GenomeSpace(("a", "b"), evolve_density=False)
    calls = {"n": 0}

    def flaky(params):
        calls["n"] += 1
        if calls["n"] % 5 == 0:
            raise RuntimeError("out of memory (simulated)")
        if calls["n"] % 7 == 0:
            return {"scores": {"t": {"score": float("nan")}}}
        return _quadratic(params)

    res = run_search(space, flaky, FitnessSpec(), SearchBudget(popsize=6, sigma=0.3, max_evals=40, seed=1),
                     tmp_path, space.encode(0.3, 1.0), progress=None)
    recs = Journal(tmp_path / "journal.jsonl").records
    assert len(recs) == 40 == res.evaluations  # never more than the budget
    failed = [r for r in recs if r["status"] == "failed"]
    assert failed and all(r["fitness"] == WORST_FITNESS for r in failed)
    assert any("out of memory" in r.get("error", "") for r in failed)
    assert res.best_fitness > res.start_fitness + 0.2
    assert abs(res.best_params["a"]["weight"] - 0.9) < 0.25


def test_a_budget_of_one_evaluation_is_no_search_the_start_point_wins(tmp_path):
    """max_evals 1 switches a search off: only the start point is scored (once, also on a rerun), and
    it is the winner even where any move would score higher; a failed start point is a clear error."""
    space = GenomeSpace(("a", "b"), evolve_density=False)
    calls = []

    def counted(params):
        calls.append(params)
        return _quadratic(params)

    x0 = space.encode(0.3, 1.0)
    budget = SearchBudget(popsize=4, sigma=0.3, max_evals=1, seed=0)
    res = run_search(space, counted, FitnessSpec(), budget, tmp_path / "s", x0, progress=None)
    assert len(calls) == 1 and res.evaluations == 1
    assert res.best_params == space.decode(x0) and res.best_fitness == res.start_fitness
    assert not (tmp_path / "s" / "cma_state.pkl").exists()
    again = run_search(space, counted, FitnessSpec(), budget, tmp_path / "s", x0, progress=None)
    assert len(calls) == 1 and again.best_fitness == res.best_fitness

    def broken(params):
        raise RuntimeError("out of memory (simulated)")

    with pytest.raises(RuntimeError, match=r"the start point \(max_evals 1: no search\) failed"):
        run_search(space, broken, FitnessSpec(), budget, tmp_path / "f", x0, progress=None)


def test_a_search_replays_its_journal_alone_and_refuses_another_searchs_journal(tmp_path):
    """A recorded journal (a benchmark draw kept in the repository) rebuilds the search's winner with
    no candidate scored again; a journal of another start point is refused, not silently reused."""
    space = GenomeSpace(("a", "b"), evolve_density=False)
    budget = SearchBudget(popsize=4, sigma=0.3, max_evals=13, seed=1)
    x0 = space.encode(0.3, 1.0)
    ref = run_search(space, _quadratic, FitnessSpec(), budget, tmp_path / "ref", x0, progress=None)
    calls = []

    def counted(params):
        calls.append(params)
        return _quadratic(params)

    for name in ("replay", "other"):
        (tmp_path / name).mkdir()
        shutil.copy(tmp_path / "ref" / "journal.jsonl", tmp_path / name / "journal.jsonl")
    again = run_search(space, counted, FitnessSpec(), budget, tmp_path / "replay", x0, progress=None)
    assert calls == []
    assert (again.best_params, again.best_fitness, again.evaluations) == (
        ref.best_params, ref.best_fitness, ref.evaluations)
    with pytest.raises(ValueError, match=r"candidate -1\.0 was recorded with another genome"):
        run_search(space, counted, FitnessSpec(), budget, tmp_path / "other", space.encode(0.5, 1.0), progress=None)
    assert calls == []


def test_a_search_in_another_live_dtype_is_refused(tmp_path):
    """Candidates scored in bf16 and in float32 differ (RESULTS.md session 50): a search resumed or
    replayed in the other dtype is refused; one that predates the record takes this one's."""
    import torch

    from memmcl_merge.evolve import _guard_dtype

    path = tmp_path / "s" / "live.json"
    path.parent.mkdir()
    _guard_dtype(path, torch.bfloat16)
    _guard_dtype(path, torch.bfloat16)
    with pytest.raises(ValueError, match=r"scored in torch.bfloat16, this machine scores them in torch.float32"):
        _guard_dtype(path, torch.float32)
    assert json.loads(path.read_text()) == {"dtype": "torch.bfloat16"}


RESUME_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from test_evolve import _quadratic
    from memmcl_merge.evolve import FitnessSpec, GenomeSpace, SearchBudget, run_search

    def slow(params):
        time.sleep(float(sys.argv[2]))
        return _quadratic(params)

    space = GenomeSpace(("a", "b"), evolve_density=False)
    res = run_search(space, slow, FitnessSpec(), SearchBudget(popsize=4, sigma=0.3, max_evals=20, seed=3),
                     Path(sys.argv[1]), space.encode(0.3, 1.0), progress=None)
    print("BEST", res.best_fitness)
""")


def _run_resume_script(workdir, delay, tmp_path):
    script = tmp_path / "search.py"
    script.write_text(RESUME_SCRIPT.format(tests=str(Path(__file__).parent)))
    return subprocess.Popen([sys.executable, str(script), str(workdir), str(delay)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_kill_mid_run_and_resume_loses_nothing(tmp_path):
    ref_dir, dir_ = tmp_path / "ref", tmp_path / "killed"
    ref = _run_resume_script(ref_dir, 0.0, tmp_path)
    assert ref.wait(timeout=120) == 0, ref.stderr.read()
    proc = _run_resume_script(dir_, 0.15, tmp_path)
    journal = dir_ / "journal.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline:
        if journal.is_file() and len(journal.read_text().splitlines()) >= 7:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up
    proc.wait(timeout=30)
    before = journal.read_text().splitlines()
    assert 7 <= len(before) < 20
    again = _run_resume_script(dir_, 0.0, tmp_path)
    assert again.wait(timeout=120) == 0, again.stderr.read()
    after = journal.read_text().splitlines()
    assert after[:len(before)] == before  # nothing finished was lost or redone
    got = [(r["generation"], r["index"], r["genome"], r["fitness"]) for r in map(json.loads, after)]
    want = [(r["generation"], r["index"], r["genome"], r["fitness"])
            for r in map(json.loads, (ref_dir / "journal.jsonl").read_text().splitlines())]
    assert got == want  # and the resumed run is the uninterrupted one


# -- a real stage on tiny models ---------------------------------------------------------------------
def _stage_config(root, base_dir, **evolve):
    from memmcl_merge.config import RunConfig

    return RunConfig(output_dir=root / "out", base_model=str(base_dir), tasks=["tweet_offensive", "tweet_irony"],
                     evolve={"stages": [{"name": "stage1", "groups": {"g": ["tweet_offensive", "tweet_irony"]},
                                         "tasks": {"g": ["tweet_offensive"]}}],
                             "search": {"popsize": 6, "max_evals": 19, "sigma": 0.3, "layer_groups": 2,
                                        "evolve_density": False},
                             "weak": {"size": 48}, "fitness": {"classification_metric": "p_gold"},
                             "batch_size": 16, **evolve})


def test_stage_improves_weak_fitness_and_recipe_reproduces_weights(disagreeing_experts, tiny_base_dir):
    from safetensors.torch import load_file

    from memmcl_merge.evolve import run_plan

    cfg = _stage_config(disagreeing_experts, tiny_base_dir)
    (disagreeing_experts / "out").mkdir(exist_ok=True)  # the run reads its experts from <output_dir>/experts
    if not (disagreeing_experts / "out" / "experts").exists():
        os.symlink(disagreeing_experts / "experts", disagreeing_experts / "out" / "experts")
    res = run_plan(cfg, progress=None)["stage1/g"]
    assert res["best_fitness"] >= res["start_fitness"] + 0.03, res
    weights = res["best_params"]["tweet_offensive"]["weight"]
    anti = res["best_params"]["tweet_irony"]["weight"]
    assert sum(weights) > sum(anti)  # it learned to trust the real expert over its negation

    recipe = Path(res["recipe"])
    assert recipe.is_file() and (recipe.parent / "stage1.yml").is_file()
    theirs = mergekit_yaml_tensors(recipe, disagreeing_experts / "mergekit-out")
    ours = load_file(str(Path(res["model"]) / "model.safetensors"))
    assert set(ours) == set(theirs)
    worst = max(float((ours[k].float() - theirs[k].float()).abs().max()) for k in ours)
    assert worst <= 1e-6, f"mergekit-yaml differs from the driver's weights by {worst}"
    assert math.isfinite(worst)
    # a finished search is skipped on the next call
    t0 = time.perf_counter()
    again = run_plan(cfg, progress=None)["stage1/g"]
    assert again["best_fitness"] == res["best_fitness"] and time.perf_counter() - t0 < 30
    # one search by its key (what side-by-side lanes run); an unknown one names the plan's searches
    assert run_plan(cfg, stages=["stage1/g"], progress=None)["stage1/g"]["best_fitness"] == res["best_fitness"]
    with pytest.raises(ValueError, match=r"searches \['stage1/g'\]"):
        run_plan(cfg, stages=["stage1/nope"], progress=None)


def test_start_point_of_a_named_search_is_its_untuned_merge(disagreeing_experts, tiny_base_dir, tmp_path):
    """benchmarks/stage_variants.materialise_start (evolve_variant.py --start-of KEY): the start point
    of the search KEY names, every member at the start weight: the expert and its negation cancel to
    the base; one member at 1/sqrt(1) is that member."""
    import torch
    from safetensors.torch import load_file

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from stage_variants import materialise_start

    cfg = _stage_config(disagreeing_experts, tiny_base_dir, stages=[
        {"name": "stage1", "groups": {"g": ["tweet_offensive", "tweet_irony"], "h": ["tweet_offensive"]}}])
    cfg = cfg.model_copy(update={"output_dir": tmp_path / "run"})
    cfg.output_dir.mkdir()
    os.symlink(disagreeing_experts / "experts", cfg.output_dir / "experts")
    got = {k: load_file(materialise_start(cfg, tmp_path / "start" / k, k) / "model.safetensors")
           for k in ("stage1/g", "stage1/h")}
    base = load_file(tiny_base_dir / "model.safetensors")
    expert = load_file(disagreeing_experts / "experts" / "tweet_offensive" / "model.safetensors")
    name = next(n for n in base if "layers.0.mlp.down_proj" in n)
    assert not torch.allclose(base[name].float(), expert[name].float(), atol=1e-3)
    assert torch.allclose(got["stage1/g"][name].float(), base[name].float(), atol=2e-2)
    assert torch.allclose(got["stage1/h"][name].float(), expert[name].float(), atol=2e-2)
    with pytest.raises(ValueError, match=r"no search 'stage2/u'.*\['stage1/g', 'stage1/h'\]"):
        materialise_start(cfg, tmp_path / "nope", "stage2/u")


def test_a_stage_without_search_merges_its_start_point(disagreeing_experts, tiny_base_dir, tmp_path):
    """search max_evals 1 on a stage: the stage's model is the untuned start point (what
    materialise_start writes), scored once on the weak sets; its recipe says so."""
    import torch
    from safetensors.torch import load_file

    from memmcl_merge.evolve import run_plan

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from stage_variants import materialise_start

    cfg = _stage_config(disagreeing_experts, tiny_base_dir, stages=[
        {"name": "stage1", "groups": {"g": ["tweet_offensive", "tweet_irony"]}, "search": {"max_evals": 1}}])
    cfg = cfg.model_copy(update={"output_dir": tmp_path / "run"})
    cfg.output_dir.mkdir()
    os.symlink(disagreeing_experts / "experts", cfg.output_dir / "experts")
    res = run_plan(cfg, progress=None)["stage1/g"]
    assert res["evaluations"] == 1 and res["best_fitness"] == res["start_fitness"]
    assert len(Journal(Path(res["journal"])).records) == 1
    assert "the start point, no search" in Path(res["recipe"]).read_text()
    ours = load_file(Path(res["model"]) / "model.safetensors")
    start = load_file(materialise_start(cfg, tmp_path / "start", "stage1/g") / "model.safetensors")
    assert set(ours) == set(start)
    assert all(torch.equal(ours[k], start[k]) for k in ours)


def test_fitness_scaled_to_the_best_member_keeps_the_share_of_its_score(disagreeing_experts, tiny_base_dir):
    """fitness.scale best_member: every member is scored once on the weak sets (as trained: the
    member's own weights), each record's fitness is its task value over the best member's, and a
    resume under another fitness is refused."""
    from memmcl_merge.evolve import MARKER, SearchRunner, build_weak_sets, link_base, run_plan, stage_dir
    from memmcl_merge.models import load_model_and_tokenizer

    cfg = _stage_config(disagreeing_experts, tiny_base_dir,
                        search={"popsize": 6, "max_evals": 7, "sigma": 0.3, "layer_groups": 2, "evolve_density": False},
                        fitness={"classification_metric": "p_gold", "scale": "best_member"})
    cfg = cfg.model_copy(update={"output_dir": disagreeing_experts / "out_scaled"})
    cfg.output_dir.mkdir(exist_ok=True)
    if not (cfg.output_dir / "experts").exists():
        os.symlink(disagreeing_experts / "experts", cfg.output_dir / "experts")
    res = run_plan(cfg, progress=None)["stage1/g"]
    work = stage_dir(cfg, "stage1/g")
    members = json.loads((work / "member_scores.json").read_text())
    best = max(m["tweet_offensive"]["p_gold"] for m in members.values())
    assert members["tweet_offensive"]["tweet_offensive"]["p_gold"] == best  # the real expert, not its negation
    records = [json.loads(line) for line in (work / "journal.jsonl").read_text().splitlines()]
    for rec in records:
        assert rec["fitness"] == pytest.approx(rec["scores"]["tweet_offensive"]["p_gold"] / best)
    assert res["start_fitness"] < 1.0 and res["best_fitness"] == max(r["fitness"] for r in records)

    # a member scored by the runner is the member's own saved model
    runner = SearchRunner(cfg, cfg.plan()[0], link_base(cfg), build_weak_sets(cfg, ["tweet_offensive"], None))
    expert, tok = load_model_and_tokenizer(str(disagreeing_experts / "experts" / "tweet_offensive"),
                                           dtype=runner.model.dtype)
    own = runner.evaluator.evaluate(runner.evaluator.wrap(expert, tok))
    assert own["tweet_offensive"]["p_gold"] == pytest.approx(best, abs=1e-4)

    # the same search resumed under another fitness is refused, naming both; the stage's own fitness
    # (the same metric unscaled) is the one it runs under, as evolve.fitness alone would not be refused
    (work / MARKER).unlink()
    stage = cfg.evolve.stages[0].model_copy(update={
        "fitness": cfg.evolve.fitness.model_copy(update={"scale": "none"})})
    plain = cfg.model_copy(update={"evolve": cfg.evolve.model_copy(update={"stages": [stage]})})
    with pytest.raises(ValueError, match="started with fitness"):
        run_plan(plain, progress=None)


@pytest.mark.slow
def test_ray_workers_write_the_serial_journal(disagreeing_experts, tiny_base_dir, tmp_path):
    pytest.importorskip("ray")
    from memmcl_merge.evolve import run_plan

    journals = {}
    for mode in ("serial", "ray"):
        out = tmp_path / mode
        out.mkdir()
        os.symlink(disagreeing_experts / "experts", out / "experts")
        cfg = _stage_config(disagreeing_experts, tiny_base_dir, parallel=mode, ray_workers=2)
        cfg = cfg.model_copy(update={"output_dir": out,
                                     "evolve": cfg.evolve.model_copy(update={
                                         "search": cfg.evolve.search.model_copy(update={"max_evals": 7})})})
        run_plan(cfg, progress=None)
        journals[mode] = [(r["genome"], round(r["fitness"], 5))
                          for r in Journal(out / "evolve" / "stage1" / "g" / "journal.jsonl").records]
    assert journals["ray"] == journals["serial"]


def test_weak_sets_are_drawn_as_configured_and_guarded_on_resume(tmp_path):
    from memmcl_merge.config import RunConfig
    from memmcl_merge.data import load_docs
    from memmcl_merge.evolve import build_weak_sets

    def cfg(sampling):
        return RunConfig.model_validate({"output_dir": str(tmp_path / "run"), "tasks": ["tweet_hate"],
                                         "evolve": {"weak": {"size": 8, "sampling": sampling}}})

    root = build_weak_sets(cfg("proportional"), ["tweet_hate"], progress=None)
    rows = [json.loads(line) for line in (root / "tweet_hate" / "weak.jsonl").read_text().splitlines()]
    dev = load_docs("tweet_hate", "dev", "embedded")
    share = sum(d["label"] == "hate" for d in dev) / len(dev)
    assert len(rows) == 8 and sum(r["label"] == "hate" for r in rows) == max(1, round(8 * share))
    assert build_weak_sets(cfg("proportional"), ["tweet_hate"], progress=None) == root  # same settings: reused
    with pytest.raises(ValueError, match=r"other settings \(differs in: sampling\)"):
        build_weak_sets(cfg("balanced"), ["tweet_hate"], progress=None)
    # weak sets drawn before the settings were recorded were balanced ones
    (root / "settings.json").unlink()
    with pytest.raises(ValueError, match=r"differs in: sampling"):
        build_weak_sets(cfg("proportional"), ["tweet_hate"], progress=None)
    assert build_weak_sets(cfg("balanced"), ["tweet_hate"], progress=None) == root
    assert json.loads((root / "settings.json").read_text())["sampling"] == "balanced"


def test_weak_sets_from_train_leave_out_the_rows_the_experts_train_on(tmp_path):
    from memmcl_merge.config import RunConfig
    from memmcl_merge.evolve import build_weak_sets
    from memmcl_merge.experts import sft_rows, task_train_rows
    from memmcl_merge.tasks import get_task

    def cfg(name, max_examples):
        return RunConfig.model_validate({"output_dir": str(tmp_path / name), "tasks": ["tweet_hate"],
                                         "experts": {"train": {"max_examples": max_examples}},
                                         "evolve": {"weak": {"split": "train", "size": 64}}})

    run = cfg("run", 400)
    root = build_weak_sets(run, ["tweet_hate"], progress=None)
    weak = [json.loads(line) for line in (root / "tweet_hate" / "weak.jsonl").read_text().splitlines()]
    trained = {r["prompt"] for r in task_train_rows("tweet_hate", run.data, run.experts.train)}
    assert len(weak) == 64 and all(d["id"].startswith("tweet_hate-train-") for d in weak)
    # 400 of the 512 train rows are the experts': none of them is in the weak set
    assert len(trained) == 400 and not trained & {r["prompt"] for r in sft_rows(get_task("tweet_hate"), weak)}
    with pytest.raises(ValueError, match=r"no rows of tweet_hate the experts do not train on \(512 rows"):
        build_weak_sets(cfg("all", None), ["tweet_hate"], progress=None)


def test_blend_picks_the_best_alpha_on_the_weak_sets_and_its_recipe_reproduces_it(disagreeing_experts,
                                                                                   tiny_base_dir, tmp_path):
    """Blend from the anti-expert (start) toward the real expert (standing in for the curriculum
    model): the weak fitness must tell the two apart, the kept alpha is the best one scored, the saved
    weights are start + alpha x (trained - start), and mergekit-yaml on the written recipe gives
    the same tensors."""
    import shutil

    import torch
    from safetensors.torch import load_file

    from memmcl_merge.blend import run_blend
    from memmcl_merge.config import RunConfig
    from memmcl_merge.curriculum import MARKER as CURRICULUM_MARKER
    from memmcl_merge.io import write_json

    start = disagreeing_experts / "experts" / "tweet_irony"
    trained = tmp_path / "final"
    shutil.copytree(disagreeing_experts / "experts" / "tweet_offensive", trained)
    write_json(trained / CURRICULUM_MARKER, {"start_model": str(start)})
    cfg = RunConfig(output_dir=tmp_path / "run", base_model=str(tiny_base_dir), tasks=["tweet_offensive"],
                    evolve={"weak": {"size": 48}, "fitness": {"classification_metric": "p_gold"},
                            "batch_size": 16},
                    curriculum={"start_model": str(start)}, blend={"enabled": True, "grid": [1, 0, 0.5]})
    rec = run_blend(cfg, progress=None, trained=trained)
    fit = {r["alpha"]: r["fitness"] for r in rec["tried"]}
    assert list(fit) == [0.0, 0.5, 1.0]  # the grid is sorted
    assert fit[1.0] > fit[0.0] + 0.05, fit  # the expert beats its negation on the weak set
    assert rec["alpha"] == max(fit, key=fit.get) and rec["fitness"] == max(fit.values())

    out = tmp_path / "run" / "blend"
    ours = load_file(str(out / "model.safetensors"))
    s, t = load_file(str(start / "model.safetensors")), load_file(str(trained / "model.safetensors"))
    a = rec["alpha"]
    for name, tensor in ours.items():
        want = (s[name].float() + a * (t[name].float() - s[name].float())).to(torch.bfloat16)
        assert torch.equal(tensor, want), name

    recipe = Path(rec["recipe"])
    assert recipe == tmp_path / "run" / "recipes" / "blend.yml" and f"weight: {a}" in recipe.read_text()
    theirs = mergekit_yaml_tensors(recipe, tmp_path / "mk")
    assert set(theirs) == set(ours) and all(torch.equal(theirs[k], ours[k]) for k in ours)

    # done: reused; another grid: refused, the blend on disk kept
    assert run_blend(cfg, progress=None, trained=trained)["alpha"] == a
    other = cfg.model_copy(update={"blend": cfg.blend.model_copy(update={"grid": [0.0, 1.0]})})
    with pytest.raises(ValueError, match=r"other settings \(differs in: grid\)"):
        run_blend(other, progress=None, trained=trained)
    with pytest.raises(FileNotFoundError, match="no finished curriculum model"):
        run_blend(cfg, progress=None, trained=tmp_path / "nothing", out=tmp_path / "b2")


def test_blend_config_is_checked():
    from memmcl_merge.config import RunConfig

    with pytest.raises(ValueError, match=r"blend.grid needs at least one alpha"):
        RunConfig(tasks=["sst2"], blend={"grid": []})
    with pytest.raises(ValueError, match=r"each in \[0, 2\]"):
        RunConfig(tasks=["sst2"], blend={"grid": [0.5, -1]})
    with pytest.raises(ValueError, match="blend.enabled needs the curriculum"):
        RunConfig(tasks=["sst2"], blend={"enabled": True}, curriculum={"enabled": False})
