"""Data sources: local folders, Hugging Face datasets saved to disk, bad data reported precisely."""

import json

import pytest
from conftest import SHARED_DATA, needs_shared_data

from memmcl_merge.data import DataError, HFSource, LocalSource, load_docs, resolve_source, sample_docs
from memmcl_merge.tasks import TASKS


def _write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")


def test_local_source_reports_file_line_and_reason(tmp_path):
    f = tmp_path / "sst2" / "train.jsonl"
    _write(f, ['{"text": "good", "label": "positive"}\n', "\n", '{"text": "bad", "label": "awful"}\n'])
    with pytest.raises(DataError, match=r"sst2/train\.jsonl:3: label 'awful' is not one of"):
        load_docs("sst2", "train", tmp_path)
    _write(f, ['{"text": "good", "label": "positive"}\n', '{"text": "bad"\n'])
    with pytest.raises(DataError, match=r"train\.jsonl:2: not valid JSON"):
        load_docs("sst2", "train", tmp_path)
    _write(f, ['{"label": "positive"}\n'])
    with pytest.raises(DataError, match=r":1: missing field 'text'"):
        load_docs("sst2", "train", tmp_path)
    _write(f, [])
    with pytest.raises(DataError, match="file is empty"):
        load_docs("sst2", "train", tmp_path)
    with pytest.raises(DataError, match=r"no 'dev' split for task sst2 \(splits there: train\)"):
        load_docs("sst2", "dev", tmp_path)


def test_resolve_source_errors_and_embedded(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="is not a folder"):
        resolve_source(tmp_path / "missing")
    monkeypatch.delenv("MEMMCL_DATA", raising=False)
    src = resolve_source(None)
    assert isinstance(src, LocalSource) and (src.root / "sst2" / "train.jsonl").is_file()
    monkeypatch.setenv("MEMMCL_DATA", str(tmp_path))
    assert resolve_source(None).root == tmp_path.resolve()


def test_hf_source_saved_to_disk_with_column_and_label_mapping(tmp_path):
    datasets = pytest.importorskip("datasets")
    feats = datasets.Features({"sentence": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=["negative", "positive"])})
    ds = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"sentence": ["fine film", "dull"], "label": [1, 0]}, features=feats),
        "validation": datasets.Dataset.from_dict({"sentence": ["great"], "label": [1]}, features=feats),
    })
    ds.save_to_disk(tmp_path / "sst2_hf")
    src = HFSource(str(tmp_path / "sst2_hf"), splits={"dev": "validation"}, columns={"text": "sentence"})
    docs = load_docs("sst2", "train", src)
    assert [(d["text"], d["label"]) for d in docs] == [("fine film", "positive"), ("dull", "negative")]
    assert load_docs("sst2", "dev", src)[0]["label"] == "positive"
    with pytest.raises(DataError, match="no split 'test'"):
        load_docs("sst2", "test", src)
    bad = HFSource(str(tmp_path / "sst2_hf"), columns={"words": "sentence"})
    with pytest.raises(DataError, match="row 0: missing field 'text'"):
        load_docs("sst2", "train", bad)


def test_sample_docs_is_seeded_and_keeps_every_label():
    spec = TASKS["tweet_stance"]
    docs = [{"text": f"t{i}", "target": "Atheism", "label": "none" if i < 90 else ("favor" if i < 95 else "against")}
            for i in range(100)]
    a, b = sample_docs(spec, docs, 9, seed=1), sample_docs(spec, docs, 9, seed=1)
    assert a == b and len(a) == 9
    assert {d["label"] for d in a} == {"none", "favor", "against"}
    assert sample_docs(spec, docs, 9, seed=2) != a


@needs_shared_data
def test_every_shared_split_loads_cleanly():
    src = LocalSource(SHARED_DATA)
    for spec in TASKS.values():
        docs = src.load(spec, "test_500")
        assert 200 <= len(docs) <= 500, spec.name
        meta = json.loads((SHARED_DATA / "tasks.json").read_text())["tasks"][spec.name]
        assert len(docs) == meta["counts"]["test_500"]


def test_proportional_sample_keeps_the_split_label_shares():
    spec = TASKS["tweet_offensive"]
    docs = [{"text": f"t{i}", "label": "offensive" if i < 28 else "not offensive"} for i in range(100)]
    prop = sample_docs(spec, docs, 25, seed=0, sampling="proportional")
    bal = sample_docs(spec, docs, 25, seed=0)
    assert len(prop) == 25 and len({d["text"] for d in prop}) == 25
    assert sum(d["label"] == "offensive" for d in prop) == 7  # 28% of 25, largest remainder
    assert sum(d["label"] == "offensive" for d in bal) in (12, 13)
    assert prop == sample_docs(spec, docs, 25, seed=0, sampling="proportional")
    # a rare label still gets one doc, and the size is kept
    stance = TASKS["tweet_stance"]
    rare = [{"text": f"t{i}", "target": "Atheism", "label": "none" if i < 98 else ("favor" if i < 99 else "against")}
            for i in range(100)]
    got = sample_docs(stance, rare, 10, seed=3, sampling="proportional")
    assert len(got) == 10 and {d["label"] for d in got} == {"none", "favor", "against"}
    # sqrt: between the two, sqrt(28) / (sqrt(28) + sqrt(72)) of 25 = 9.6 -> 10
    sq = sample_docs(spec, docs, 25, seed=0, sampling="sqrt")
    assert len(sq) == 25 and sum(d["label"] == "offensive" for d in sq) == 10
    with pytest.raises(ValueError, match="sampling must be one of"):
        sample_docs(spec, docs, 5, sampling="uniform")
