"""lm-eval task folder (sentiment_* tasks); shipped inside the package as memmcl_merge.evals."""
