"""Task registry, prompts, and the metrics against hand-computed cases."""

import json

import pytest
from conftest import SHARED_DATA, needs_shared_data

from memmcl_merge import lm_tasks
from memmcl_merge.tasks import TASKS, TaskMeta, format_triplets, get_task, parse_triplets


def test_registry_covers_the_shared_task_list():
    expected = {"sst2", "sst5", "tweet_sentiment", "lap14_atsc", "rest14_atsc", "aste_lap14", "aste_res14",
                "tweet_emotion", "tweet_irony", "tweet_hate", "tweet_offensive", "tweet_stance"}
    assert set(TASKS) == expected
    assert get_task("sentiment_sst2") is TASKS["sst2"]
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        get_task("nope")


@needs_shared_data
def test_registry_agrees_with_shared_tasks_json():
    meta = json.loads((SHARED_DATA / "tasks.json").read_text())["tasks"]
    for name, spec in TASKS.items():
        assert list(spec.labels) == meta[name]["labels"], name
        assert spec.group == meta[name]["group"], name


def test_prompt_shows_context_and_demos():
    spec = TASKS["lap14_atsc"]
    doc = {"text": "Great screen but awful battery", "aspect": "battery", "label": "negative"}
    demo = {"text": "Fast keyboard", "aspect": "keyboard", "label": "positive"}
    p = spec.prompt(doc, [demo])
    assert p.startswith(spec.instruction)
    assert "Aspect: keyboard\nAnswer: positive" in p
    assert p.endswith("Review: Great screen but awful battery\nAspect: battery\nAnswer:")
    assert spec.answer(doc) == "negative"


def test_check_doc_reasons():
    sst2, aste = TASKS["sst2"], TASKS["aste_lap14"]
    assert sst2.check_doc({"text": "ok", "label": "positive"}) is None
    assert "missing field 'label'" in sst2.check_doc({"text": "ok"})
    assert "not one of" in sst2.check_doc({"text": "ok", "label": "meh"})
    assert "empty" in sst2.check_doc({"text": "  ", "label": "positive"})
    assert "bad triplet" in aste.check_doc({"text": "x", "triplets": [["a", "b"]]})
    assert "polarity 'good'" in aste.check_doc({"text": "x", "triplets": [["a", "b", "good"]]})


def test_triplet_format_round_trip_and_malformed_generations():
    trips = [["battery life", "good", "positive"], ["screen", "dim", "negative"]]
    text = format_triplets(trips)
    assert text == "(battery life; good; positive) (screen; dim; negative)"
    assert parse_triplets(text) == [tuple(t) for t in trips]
    assert format_triplets([]) == "none"
    assert parse_triplets("none") == []
    # Half-written, wrong polarity, missing field, extra spaces and case: each handled without raising.
    assert parse_triplets("(Battery  Life ;GOOD; positive) (screen; dim") == [("battery life", "good", "positive")]
    assert parse_triplets("(a; b; great) (a; ; positive) (x; y; neutral)") == [("x", "y", "neutral")]
    assert parse_triplets("") == [] and parse_triplets(None) == []


def test_classification_metrics_by_hand():
    items = [(0, 0), (0, 1), (1, 1), (1, 1), (2, 0)]
    assert lm_tasks.accuracy(items) == pytest.approx(3 / 5)
    # class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: tp0 -> 0
    assert lm_tasks.macro_f1(items) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert lm_tasks.balanced_p_gold([(0, 0.9), (0, 0.5), (1, 0.2)]) == pytest.approx((0.7 + 0.2) / 2)
    assert lm_tasks.brier([(1, [0.25, 0.75])]) == pytest.approx(0.25 ** 2 * 2)


def test_triplet_micro_f1_by_hand():
    a, b, c = ("a", "b", "positive"), ("c", "d", "negative"), ("e", "f", "neutral")
    items = [({a, c}, {a, b}), (set(), {c}), ({b}, set())]
    # tp = 1, predicted = 3, gold = 3 -> F1 = 2*1/(3+3)
    assert lm_tasks.micro_f1(items) == pytest.approx(1 / 3)
    assert lm_tasks.micro_f1([(set(), set())]) == 0.0


def test_triplet_partial_f1_by_hand():
    right = ("battery", "good", "positive")
    wrong_opinion_polarity = ("battery", "bad", "negative")
    wrong_polarity = ("battery", "good", "negative")
    gold = {right}
    # exact match: nothing; aspect 1, opinion 0, (aspect, polarity) 0, triplet 0
    assert lm_tasks.micro_f1([({wrong_opinion_polarity}, gold)]) == 0.0
    assert lm_tasks.partial_f1([({wrong_opinion_polarity}, gold)]) == pytest.approx(1 / 4)
    # the polarity alone wrong: aspect 1, opinion 1, (aspect, polarity) 0, triplet 0
    assert lm_tasks.partial_f1([({wrong_polarity}, gold)]) == pytest.approx(2 / 4)
    assert lm_tasks.partial_f1([({right}, gold)]) == 1.0
    assert lm_tasks.partial_f1([(set(), gold)]) == 0.0 == lm_tasks.partial_f1([(set(), set())])
    out = lm_tasks.process_triplets({"gold_triplets": json.dumps([list(right)])}, ["(battery; good; negative)"])
    assert lm_tasks.partial_f1([out["partial_f1"]]) == pytest.approx(0.5)


def test_process_results_from_loglikelihoods():
    doc = {"gold": 1, "metric": "accuracy"}
    out = lm_tasks.process_classification(doc, [(-2.0, False), (-1.0, True)])
    assert out["acc"] == 1.0 and out["macro_f1"] == (1, 1)
    assert out["p_gold"][1] == pytest.approx(1 / (1 + pytest.importorskip("math").exp(-1)))
    gen = lm_tasks.process_triplets({"gold_triplets": json.dumps([["Battery", "good", "positive"]])},
                                    ["(battery; good; positive) (x; y; negative)"])
    assert lm_tasks.micro_f1([gen["micro_f1"]]) == pytest.approx(2 / 3)


def test_yaml_folder_is_in_sync_with_registry():
    rendered = lm_tasks.render_eval_folder()
    folder = lm_tasks.evals_dir()
    for name, text in rendered.items():
        assert (folder / name).read_text() == text, f"{name} is stale: run `memmcl tasks write-yaml`"
    groups = [n for n in rendered if n.startswith("_")]
    assert all("sentiment_" not in n for n in groups)  # groups must not match 'sentiment_*'


def test_meta_data_measured():
    spec = TASKS["sst2"]
    docs = [{"text": "a b c", "label": "positive"}, {"text": "a", "label": "negative"}]
    meta = TaskMeta.measure(spec, docs)
    assert meta.num_classes == 2 and meta.output_structure == "label"
    assert meta.mean_input_words == 2.0 and meta.label_entropy == pytest.approx(1.0)
    trip = TaskMeta.measure(TASKS["aste_lap14"], [{"text": "x y", "triplets": [["x", "y", "neutral"]]}])
    assert trip.output_structure == "triplets" and trip.label_entropy == 0.0
