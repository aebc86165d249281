"""lm-eval hooks for the sentiment_* tasks: thin re-exports of memmcl_merge.lm_tasks."""

from memmcl_merge.lm_tasks import (  # noqa: F401
    accuracy,
    balanced_p_gold,
    brier,
    load_dataset,
    macro_f1,
    micro_f1,
    partial_f1,
    process_classification,
    process_triplets,
)
