"""benchmarks/reinject_variant.py: which tasks are short, the merge it builds, the weights it picks (one test
on tiny models), and the run's weak sets a variant is scored on."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import reinject_variant as rv
import run_benchmark as rb
from conftest import mergekit_yaml_tensors

from memmcl_merge.merge_methods.inprocess import MemmclMerger


def test_short_tasks_are_under_keep_times_their_own_expert():
    weak = {"sst5": {"score": 0.40}, "sst2": {"score": 0.90}, "tweet_emotion": {"score": 0.67},
            "aste_lap14": {"score": 0.10}}
    own = {"sst5": {"score": 0.44}, "sst2": {"score": 0.92}, "tweet_emotion": {"score": 0.70}}  # no ASTE expert
    assert rv.short_tasks(weak, own, 0.95) == ["sst5"]  # 0.67 >= 0.665 kept, 0.40 < 0.418 short
    assert rv.short_tasks(weak, own, 0.96) == ["sst5", "tweet_emotion"]
    assert rv.short_tasks(weak, own, 0.5) == []


def test_the_merge_is_the_trained_model_plus_alpha_times_each_target_task_vector():
    g = torch.Generator().manual_seed(0)
    base, trained, sst5, emo = ({"w": torch.randn(4, 3, generator=g)} for _ in range(4))
    merger = MemmclMerger(base, {"trained": trained, "sst5": sst5, "tweet_emotion": emo})
    got = merger.merge(rv.reinject_params({"sst5": 0.3, "tweet_emotion": 0.5}))["w"]
    want = trained["w"] + 0.3 * (sst5["w"] - base["w"]) + 0.5 * (emo["w"] - base["w"])
    assert torch.allclose(got, want, atol=1e-6)
    # alpha 0, or an expert left out, gives the trained model back; trained weight 0 gives the expert
    assert torch.allclose(merger.merge(rv.reinject_params({"sst5": 0.0}))["w"], trained["w"], atol=1e-6)
    assert torch.allclose(merger.merge(rv.reinject_params({}))["w"], trained["w"], atol=1e-6)
    assert torch.allclose(merger.merge(rv.reinject_params({"sst5": 1.0}, trained_weight=0.0))["w"], sst5["w"],
                          atol=1e-6)


def test_pick_takes_the_best_fitness_and_breaks_ties_toward_the_trained_model():
    tried = [{"alphas": {"a": a}, "fitness": f} for a, f in [(0.0, 0.50), (0.1, 0.52), (0.3, 0.52), (0.5, 0.49)]]
    assert rv.pick(tried)["alphas"] == {"a": 0.1}
    assert rv.pick([{"alphas": {"a": 0.2}, "fitness": 0.5}, {"alphas": {"a": 0.0}, "fitness": 0.5}])["alphas"] == {"a": 0.0}


def _fake_scored(want: dict):
    """A fitness that peaks at ``want`` (a quadratic bowl), counting its calls."""
    calls = []

    def scored(alphas):
        calls.append(dict(alphas))
        return {"alphas": dict(alphas), "fitness": -sum((a - want.get(t, 0.0)) ** 2 for t, a in alphas.items())}
    return scored, calls


def test_greedy_alphas_picks_each_targets_weight_in_turn_and_can_drop_one():
    scored, calls = _fake_scored({"sst5": 0.5, "tweet_irony": 0.0})  # the irony vector only hurts
    start = scored({"sst5": 0.0, "tweet_irony": 0.0})
    best, tried = rv.greedy_alphas(["sst5", "tweet_irony"], [0.0, 0.25, 0.5, 1.0], start, scored)
    assert best["alphas"] == {"sst5": 0.5, "tweet_irony": 0.0}
    assert len(tried) == 6 and len(calls) == 7  # 3 non-zero alphas per target, plus the start
    assert all(c["sst5"] == 0.5 for c in calls[4:])  # irony tried with sst5 at its pick


def test_greedy_alphas_without_zero_in_the_grid_fixes_every_alpha():
    scored, _ = _fake_scored({})  # every reinjection hurts, the start is best
    start = scored({"sst5": 0.0, "tweet_emotion": 0.0})
    best, tried = rv.greedy_alphas(["sst5", "tweet_emotion"], [0.5], start, scored)
    assert best["alphas"] == {"sst5": 0.5, "tweet_emotion": 0.5} and len(tried) == 2
    # with 0 in the grid the start wins
    assert rv.greedy_alphas(["sst5"], [0.0, 0.5], scored({"sst5": 0.0}), scored)[0]["alphas"] == {"sst5": 0.0}


def test_reinject_finds_the_short_task_adds_its_expert_back_and_its_recipe_reproduces_it(disagreeing_experts,
                                                                                          tiny_base_dir, tmp_path):
    """The anti-expert (base - task vector) stands in for a trained model that lost tweet_offensive:
    on the weak rows it is short of the expert, so the expert is the target; trained + alpha x (expert -
    base) is base + (alpha - 1) x task vector, so alpha 2 (the expert itself) wins the weak fitness
    well above the anti-expert and the base, the saved weights are that sum, and mergekit-yaml on the
    written recipe gives the same."""
    from safetensors.torch import load_file

    from memmcl_merge.config import RunConfig

    run = tmp_path / "run"
    run.mkdir()
    (run / "experts").symlink_to(disagreeing_experts / "experts", target_is_directory=True)
    trained = disagreeing_experts / "experts" / "tweet_irony"
    cfg = RunConfig(output_dir=run, base_model=str(tiny_base_dir), tasks=["tweet_offensive"],
                    evolve={"weak": {"size": 48}, "fitness": {"classification_metric": "p_gold"}, "batch_size": 16})
    out = run / "variants" / "reinjected"
    rec = rv.reinject(cfg, trained, out, {**rv.SETTINGS, "grid": [0.0, 1.0, 2.0]}, progress=lambda *_: None)
    assert rec["targets"] == ["tweet_offensive"]
    assert [r["alphas"] for r in rec["tried"]] == [{"tweet_offensive": a} for a in (0.0, 1.0, 2.0)]
    fit = [r["fitness"] for r in rec["tried"]]
    assert fit[2] > max(fit[:2]) + 0.05, fit  # alpha 2 is the expert itself
    assert rec["alphas"] == {"tweet_offensive": 2.0} and rec["fitness"] == max(fit)
    # a grid without 0 fixes alpha (an ablation); alpha 0 is still scored, not kept
    fixed = rv.reinject(cfg, trained, run / "variants" / "fixed", {**rv.SETTINGS, "grid": [0.5]},
                        progress=lambda *_: None)
    assert [r["alphas"] for r in fixed["tried"]] == [{"tweet_offensive": a} for a in (0.0, 0.5)]
    assert fixed["alphas"] == {"tweet_offensive": 0.5}
    # the expert scored on the same weak rows beats the trained model there: what made it a target
    assert rec["own_experts_weak"]["tweet_offensive"]["score"] > rec["tried"][0]["scores"]["tweet_offensive"]["score"]

    ours = load_file(str(out / "model.safetensors"))
    b = load_file(str(tiny_base_dir / "model.safetensors"))
    t = load_file(str(trained / "model.safetensors"))
    e = load_file(str(disagreeing_experts / "experts" / "tweet_offensive" / "model.safetensors"))
    for name, tensor in ours.items():
        want = t[name].float() + 2.0 * (e[name].float() - b[name].float())
        assert torch.allclose(tensor.float(), want, rtol=1e-2, atol=1e-3), name

    theirs = mergekit_yaml_tensors(Path(rec["recipe"]), tmp_path / "mk")
    assert set(theirs) == set(ours) and all(torch.equal(theirs[k], ours[k]) for k in ours)


def test_a_variant_is_scored_on_the_weak_sets_its_run_was_searched_on(tmp_path):
    from memmcl_merge.config import RunConfig
    from memmcl_merge.io import write_json

    cfg = RunConfig(output_dir=tmp_path, tasks=["sst2"], evolve={"weak": {"size": 32, "seed": 0}})
    with pytest.raises(SystemExit, match="no weak sets"):
        rb.with_run_weak_sets(cfg)
    write_json(tmp_path / "weak" / "settings.json", {**cfg.evolve.weak.model_dump(mode="json"), "size": 16, "seed": 3})
    got = rb.with_run_weak_sets(cfg).evolve.weak
    assert (got.size, got.seed) == (16, 3) and cfg.evolve.weak.size == 32  # cfg itself untouched
