"""lm-eval's HFLM, scoring multiple-choice requests without the logits nobody reads.

For a loglikelihood batch HFLM asks the model for logits at every position of every row, then
takes a log-softmax over the 49k-word vocabulary at every position, and keeps only the few
positions of each answer. On a 135M model the LM head is a fifth of the matmul work per token and
that log-softmax (bf16, element-wise) is slow on a CPU. HFLM already handles a model that returns
fewer positions than it was given (it offsets each row's slice by the difference), so this class
asks the model for the last ``L`` positions only (``logits_to_keep``), with ``L`` covering every
row's answer: rows are right-padded, an answer has at most ``max_answer_tokens`` tokens.

Nothing else changes: same requests, batches, sorting, caching and answers. A guard refuses a slice
that would fall outside the kept window instead of scoring the wrong tokens.
"""

from __future__ import annotations

import torch
from lm_eval.models.huggingface import HFLM

# HFLM pads loglikelihood batches on the right with token id 0.
PAD_ID = 0


class AnswerWindowHFLM(HFLM):
    def __init__(self, *args, max_answer_tokens: int, **kwargs):
        super().__init__(*args, **kwargs)
        if max_answer_tokens < 1:
            raise ValueError(f"max_answer_tokens must be >= 1, got {max_answer_tokens}")
        self.max_answer_tokens = int(max_answer_tokens)

    def keep_last(self, inps: torch.Tensor) -> int:
        """Positions to keep so that every row's last ``max_answer_tokens`` inputs are inside.

        A row's length is where its right padding starts; a row that really ends in token 0 is
        measured shorter, which only widens the window (never drops a needed position)."""
        nonpad = (inps != PAD_ID).int()
        # index of the last non-pad token + 1 per row (0 for an all-pad row)
        lengths = inps.shape[1] - nonpad.flip(1).argmax(1)
        lengths = torch.where(nonpad.any(1), lengths, torch.zeros_like(lengths))
        start = max(0, int(lengths.min()) - self.max_answer_tokens)
        return inps.shape[1] - start

    def _model_call(self, inps, attn_mask=None, labels=None):
        if attn_mask is not None or labels is not None:  # seq2seq: HFLM's own path
            return super()._model_call(inps, attn_mask=attn_mask, labels=labels)
        with torch.no_grad(), torch.autocast(device_type=self.device.type, dtype=self.mixed_precision_dtype,
                                             enabled=self.mixed_precision_dtype is not None):
            try:
                return self.model(inps, logits_to_keep=self.keep_last(inps)).logits
            except TypeError as e:  # an architecture without logits_to_keep: all positions, as HFLM does
                if "logits_to_keep" not in str(e):
                    raise
                return self.model(inps).logits

    def _select_cont_toks(self, logits, contlen=None, inplen=None):
        if self.backend == "causal" and contlen and inplen is not None and inplen - contlen < 0:
            raise RuntimeError(f"an answer of {contlen} tokens is longer than max_answer_tokens="
                               f"{self.max_answer_tokens}: its logits were not kept")
        return super()._select_cont_toks(logits, contlen=contlen, inplen=inplen)
