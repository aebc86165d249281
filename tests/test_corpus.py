"""The embedded corpus: deterministic, valid for every task, disjoint splits, atomic, learnable."""

from __future__ import annotations

import collections
import json
import math
import random
import re
from pathlib import Path

import pytest

from memmcl_merge import corpus
from memmcl_merge.tasks import TASKS

STANCE_TARGETS = {"Atheism", "Climate Change is a Real Concern", "Feminist Movement", "Hillary Clinton",
                  "Legalization of Abortion"}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "c"
    assert corpus.write_corpus(out) == out.absolute()
    return out


def _load(root: Path, task: str, split: str) -> list[dict]:
    with (root / task / f"{split}.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _contains(text: str, term: str) -> bool:
    toks, t = text.split(), term.split()
    return any(toks[i:i + len(t)] == t for i in range(len(toks) - len(t) + 1))


# -- determinism ---------------------------------------------------------------------------------
# (no timing assertion: a loaded machine took 13.6 s once; speed claims belong in benchmarks/)
def test_write_is_byte_identical(written, tmp_path):
    first = written
    second = corpus.write_corpus(tmp_path / "again")
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert len(files) == 12 * 4 + 1
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


def test_generate_split_is_deterministic_and_seeded():
    a = corpus.generate_split("tweet_stance", "dev", 40, seed=3)
    assert a == corpus.generate_split("sentiment_tweet_stance", "dev", 40, seed=3)
    assert a != corpus.generate_split("tweet_stance", "dev", 40, seed=4)
    assert [d["id"] for d in a] == [f"tweet_stance-dev-{i:05d}" for i in range(40)]
    # a smaller n is a prefix of a larger one: ids are stable
    assert corpus.generate_split("sst2", "train", 30) == corpus.generate_split("sst2", "train", 60)[:30]


def test_stable_hash_is_fixed_across_processes():
    # pinned: Python's hash() is salted per process, this one must not be
    assert corpus.stable_hash("sst2/train") == 0x76AEA9A3280067DF


# -- schema --------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", list(TASKS))
def test_schema_of_every_split(written, task):
    root = written
    spec = TASKS[task]
    meta = json.loads((root / "tasks.json").read_text(encoding="utf-8"))["tasks"][task]
    assert (meta["name"], meta["group"], meta["type"], meta["metric"]) == (spec.name, spec.group, spec.type,
                                                                          spec.metric)
    assert meta["labels"] == list(spec.labels)
    for split in corpus.SPLITS:
        docs = _load(root, task, split)
        assert len(docs) == meta["counts"][split] == corpus.DEFAULT_SIZES.get(split, 256)
        assert len({d["id"] for d in docs}) == len(docs)
        counts = collections.Counter(lab for d in docs for lab in corpus._gold_labels(spec, d))
        assert {k: v for k, v in meta["label_counts"][split].items() if v} == dict(counts)
        for d in docs:
            assert spec.check_doc(d) is None, d
            assert list(d) == meta["fields"], d
            assert d["text"] == " ".join(d["text"].split()) and d["text"].isprintable()
            assert corpus.MIN_WORDS <= len(d["text"].split()) <= corpus.MAX_WORDS, d
            if spec.context_field == "aspect":
                assert _contains(d["text"], d["aspect"]), d
            if spec.context_field == "target":
                assert d["target"] in STANCE_TARGETS
            if spec.is_generative:
                assert d["triplets"], d
                for a, o, _ in d["triplets"]:
                    assert _contains(d["text"], a) and _contains(d["text"], o), d
    assert _load(root, task, "test_500") == _load(root, task, "test")  # test has <= 500 examples


def test_splits_share_no_text(written):
    root = written
    for task in TASKS:
        texts = {s: {d["text"] for d in _load(root, task, s)} for s in ("train", "dev", "test")}
        assert not texts["train"] & texts["test"], task
        assert not texts["train"] & texts["dev"], task
        assert not texts["dev"] & texts["test"], task


def test_every_label_in_train_and_skewed_but_not_degenerate(written):
    root = written
    for task, spec in TASKS.items():
        counts = collections.Counter(lab for d in _load(root, task, "train") for lab in corpus._gold_labels(spec, d))
        assert set(counts) == set(spec.labels), (task, counts)
        top = max(counts.values()) / sum(counts.values())
        assert top < 0.75, (task, counts)
        if spec.is_generative:  # several triplets per sentence, some with a shared aspect
            docs = _load(root, task, "train")
            assert any(len(d["triplets"]) >= 2 for d in docs)
    # ATSC: the label depends on the aspect asked: one text, two aspects, two labels
    docs = _load(root, "lap14_atsc", "train")
    by_text = collections.defaultdict(set)
    for d in docs:
        by_text[d["text"]].add(d["label"])
    assert sum(len(v) > 1 for v in by_text.values()) > 20


def test_test_500_is_a_stratified_subset_when_test_is_large():
    test = corpus.generate_split("tweet_emotion", "test", 700)
    sub = corpus.generate_split("tweet_emotion", "test_500", 700)
    assert len(sub) == 500 and all(d in test for d in sub)
    full = collections.Counter(d["label"] for d in test)
    part = collections.Counter(d["label"] for d in sub)
    for lab, n in full.items():
        assert abs(part[lab] - n * 500 / 700) <= 1


def test_sizes_are_configurable_and_checked(tmp_path):
    out = corpus.write_corpus(tmp_path / "small", seed=1, sizes={"train": 20, "dev": 5, "test": 10})
    meta = json.loads((out / "tasks.json").read_text())
    assert meta["seed"] == 1
    for task in TASKS:
        assert meta["tasks"][task]["counts"] == {"train": 20, "dev": 5, "test": 10, "test_500": 10}
    with pytest.raises(ValueError, match="unknown split"):
        corpus.write_corpus(tmp_path / "bad", sizes={"validation": 3})
    with pytest.raises(ValueError):
        corpus.generate_split("sst2", "validation")
    with pytest.raises(KeyError):
        corpus.generate_split("imdb", "train")


# -- atomic writes and the cache -----------------------------------------------------------------
def _failing_dump(monkeypatch, after: int) -> None:
    real, calls = corpus._dump_jsonl, []

    def dump(path, docs):
        calls.append(path)
        if len(calls) > after:
            raise OSError("disk full (simulated)")
        real(path, docs)

    monkeypatch.setattr(corpus, "_dump_jsonl", dump)


def test_failed_write_leaves_no_half_folder(tmp_path, monkeypatch):
    _failing_dump(monkeypatch, after=9)
    with pytest.raises(OSError, match="simulated"):
        corpus.write_corpus(tmp_path / "c", sizes={"train": 8, "dev": 4, "test": 4})
    assert list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_the_old_corpus(tmp_path, monkeypatch):
    out = corpus.write_corpus(tmp_path / "c", sizes={"train": 8, "dev": 4, "test": 4})
    before = (out / "tasks.json").read_bytes()
    _failing_dump(monkeypatch, after=20)
    with pytest.raises(OSError, match="simulated"):
        corpus.write_corpus(out, seed=5, sizes={"train": 8, "dev": 4, "test": 4})
    assert (out / "tasks.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c"]
    monkeypatch.undo()
    corpus.write_corpus(out, seed=5, sizes={"train": 8, "dev": 4, "test": 4})  # a rewrite replaces it
    assert json.loads((out / "tasks.json").read_text())["seed"] == 5
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def test_ensure_corpus_writes_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(corpus.CACHE_ENV, str(tmp_path / "cache"))
    assert corpus.default_corpus_dir() == tmp_path / "cache" / "corpus" / f"{corpus.CORPUS_VERSION}-seed0"
    calls = []
    real = corpus._build
    monkeypatch.setattr(corpus, "_build", lambda *a: (calls.append(a), real(*a)))
    first = corpus.ensure_corpus()
    assert first == corpus.default_corpus_dir() and (first / "sst2" / "train.jsonl").is_file()
    assert corpus.ensure_corpus() == first
    assert len(calls) == 1


def test_module_entry_point(tmp_path, capsys):
    assert corpus.main([str(tmp_path / "out"), "2"]) == 0
    assert json.loads((tmp_path / "out" / "tasks.json").read_text())["seed"] == 2
    assert corpus.main([]) == 2


# -- learnability --------------------------------------------------------------------------------
def _features(d: dict) -> list[str]:
    toks = re.findall(r"[\w'#@-]+", d["text"].lower())
    feats = list(toks)
    if "aspect" in d:  # words near the aspect, so the classifier can tell the aspects apart
        a = d["aspect"].lower().split()
        i = next(i for i in range(len(toks)) if toks[i:i + len(a)] == a)
        feats += ["near:" + t for t in toks[max(0, i - 3):i + len(a) + 4]]
    return feats


def _naive_bayes_accuracy(train: list[dict], test: list[dict], labels: list[str]) -> float:
    prior = collections.Counter(labels)
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for d, y in zip(train, labels):
        counts[y].update(_features(d))
    vocab = len({t for c in counts.values() for t in c})
    totals = {y: sum(c.values()) for y, c in counts.items()}

    def score(y, feats):
        return math.log(prior[y]) + sum(math.log((counts[y][t] + 1) / (totals[y] + vocab)) for t in feats)

    hits = sum(max(sorted(prior), key=lambda y: score(y, _features(d))) == d["label"] for d in test)
    return hits / len(test)


@pytest.mark.parametrize("task,floor,ceiling", [("sst2", 0.6, 0.99), ("lap14_atsc", 0.6, 0.99),
                                                ("tweet_sentiment", 0.75, 0.99)])
def test_bag_of_words_learns_but_does_not_solve(written, task, floor, ceiling):
    root = written
    train, test = _load(root, task, "train"), _load(root, task, "test")
    majority = max(collections.Counter(d["label"] for d in test).values()) / len(test)
    acc = _naive_bayes_accuracy(train, test, [d["label"] for d in train])
    assert max(floor, majority + 0.07) <= acc < ceiling, (task, acc, majority)
    shuffled = [d["label"] for d in train]
    random.Random(0).shuffle(shuffled)
    control = _naive_bayes_accuracy(train, test, shuffled)
    assert control <= majority + 0.05 and control < acc - 0.1, (task, control, acc, majority)
