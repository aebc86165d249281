"""benchmarks/reinject_variant.py: which tasks are short, the merge it builds, the alpha it picks (no model run)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import reinject_variant as rv

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
    got = merger.merge(rv.reinject_params(["sst5", "tweet_emotion"], 0.3))["w"]
    want = trained["w"] + 0.3 * (sst5["w"] - base["w"]) + 0.3 * (emo["w"] - base["w"])
    assert torch.allclose(got, want, atol=1e-6)
    # alpha 0 gives the trained model back
    assert torch.allclose(merger.merge(rv.reinject_params(["sst5", "tweet_emotion"], 0.0))["w"], trained["w"], atol=1e-6)


def test_pick_takes_the_best_fitness_and_breaks_ties_toward_the_trained_model():
    tried = [{"alpha": 0.0, "fitness": 0.50}, {"alpha": 0.1, "fitness": 0.52}, {"alpha": 0.3, "fitness": 0.52},
             {"alpha": 0.5, "fitness": 0.49}]
    assert rv.pick(tried)["alpha"] == pytest.approx(0.1)
    assert rv.pick([{"alpha": 0.2, "fitness": 0.5}, {"alpha": 0.0, "fitness": 0.5}])["alpha"] == 0.0


def test_reinject_finds_the_short_task_adds_its_expert_back_and_its_recipe_reproduces_it(disagreeing_experts,
                                                                                          tiny_base_dir, tmp_path):
    """The anti-expert (base - task vector) stands in for a trained model that lost tweet_offensive:
    on the weak rows it is short of the expert, so the expert is the target; trained + alpha x (expert -
    base) is base + (alpha - 1) x task vector, so alpha 2 (the expert itself) wins the weak fitness
    well above the anti-expert and the base, the saved weights are that sum, and mergekit-yaml on the written recipe gives the same."""
    import os
    import subprocess

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
    fit = [r["fitness"] for r in rec["tried"]]
    assert fit[2] > max(fit[:2]) + 0.05, fit  # alpha 2 is the expert itself
    assert rec["alpha"] == 2.0 and rec["fitness"] == max(fit)
    # the expert scored on the same weak rows beats the trained model there: what made it a target
    assert rec["own_experts_weak"]["tweet_offensive"]["score"] > rec["tried"][0]["scores"]["tweet_offensive"]["score"]

    ours = load_file(str(out / "model.safetensors"))
    b = load_file(str(tiny_base_dir / "model.safetensors"))
    t = load_file(str(trained / "model.safetensors"))
    e = load_file(str(disagreeing_experts / "experts" / "tweet_offensive" / "model.safetensors"))
    for name, tensor in ours.items():
        want = t[name].float() + 2.0 * (e[name].float() - b[name].float())
        assert torch.allclose(tensor.float(), want, rtol=1e-2, atol=1e-3), name

    recipe = Path(rec["recipe"])
    exe = Path(sys.executable).with_name("mergekit-yaml")
    proc = subprocess.run([str(exe), str(recipe), str(tmp_path / "mk"), "--copy-tokenizer"], capture_output=True,
                          text=True, timeout=300, check=False, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = {}
    for f in (tmp_path / "mk").glob("*.safetensors"):
        theirs.update(load_file(str(f)))
    assert set(theirs) == set(ours) and all(torch.equal(theirs[k], ours[k]) for k in ours)
