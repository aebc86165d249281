"""benchmarks/answer_fit.py: how closely a model fits the gold answers of rows."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import answer_fit


def test_a_model_trained_on_the_rows_fits_their_gold_answers_better_than_its_base(tiny_base_dir,
                                                                                   disagreeing_experts):
    """The tweet_offensive expert against the base it was trained from, on that expert's own rows."""
    from memmcl_merge.config import TrainConfig
    from memmcl_merge.experts import task_train_rows
    from memmcl_merge.models import load_model_and_tokenizer

    # the rows the fixture trained on (its max_examples and seed)
    rows = task_train_rows("tweet_offensive", "embedded", TrainConfig(max_examples=256))[:24]
    base, tok = load_model_and_tokenizer(str(tiny_base_dir))
    expert, _ = load_model_and_tokenizer(str(disagreeing_experts / "experts" / "tweet_offensive"))
    before, after = answer_fit.fit(base, tok, rows), answer_fit.fit(expert, tok, rows)
    assert before["rows"] == after["rows"] == 24
    assert 0.0 <= before["p_gold"] < 0.2 < after["p_gold"] <= 1.0
    assert after["top1"] > before["top1"]
