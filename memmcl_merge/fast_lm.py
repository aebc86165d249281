"""lm-eval's HFLM, scoring multiple-choice requests without the logits nobody reads.

For a loglikelihood batch HFLM asks the model for logits at every position of every row, then
takes a log-softmax over the 49k-word vocabulary at every position, and keeps only the few
positions of each answer. On a 135M model the LM head is a fifth of the matmul work per token and
that log-softmax (bf16, element-wise) is slow on a CPU. HFLM already handles a model that returns
fewer positions than it was given (it offsets each row's slice by the difference), so this class
asks the model for the last ``L`` positions only (``logits_to_keep``), with ``L`` covering every
row's answer: rows are right-padded, an answer has at most ``max_answer_tokens`` tokens.

It also computes each batch's shared prompt prefix once (``share_prefix``). Every prompt of a task
starts with the task's instruction, often a third to a half of its tokens, and HFLM runs it again
for every row. Requests are grouped by their first tokens (so a batch holds one task's prompts),
each group goes through HFLM's own batching, and in a batch whose rows all start with the same
tokens the model runs that prefix once, copies its key/value cache to every row and runs only the
rest. Attention over a cached prefix is the same arithmetic, so log-likelihoods agree with HFLM's
up to floating-point rounding (the benchmark step ``answer_window`` measures it on real data).

Nothing else changes: same requests, answers, and HFLM's sorting and caching within a group. A guard
refuses a slice that would fall outside the kept window instead of scoring the wrong tokens.
"""

from __future__ import annotations

import torch
from lm_eval.models.huggingface import HFLM

# HFLM pads loglikelihood batches on the right with token id 0.
PAD_ID = 0
# Requests whose contexts start with the same this-many tokens are batched together (one task's
# instruction); the prefix actually shared is measured per batch, so this only steers batching.
GROUP_KEY_TOKENS = 8
# A shared prefix shorter than this is not worth a second forward call.
MIN_SHARED_PREFIX = 8


class AnswerWindowHFLM(HFLM):
    def __init__(self, *args, max_answer_tokens: int, share_prefix: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if max_answer_tokens < 1:
            raise ValueError(f"max_answer_tokens must be >= 1, got {max_answer_tokens}")
        self.max_answer_tokens = int(max_answer_tokens)
        self.share_prefix = share_prefix

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

    @staticmethod
    def shared_prefix(inps: torch.Tensor, limit: int) -> int:
        """How many leading tokens every row has in common, at most ``limit``."""
        same = (inps[:, :limit] == inps[:1, :limit]).all(0)
        return limit if bool(same.all()) else int(same.int().argmin())

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        groups: dict[tuple, list[int]] = {}
        for i, (_, context_enc, _) in enumerate(requests):
            groups.setdefault(tuple(context_enc[:GROUP_KEY_TOKENS]), []).append(i)
        if not self.share_prefix or self.backend != "causal" or len(groups) < 2:
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        out: list = [None] * len(requests)
        for idx in groups.values():  # HFLM returns each group's results in the order given
            done = super()._loglikelihood_tokens([requests[i] for i in idx], disable_tqdm=disable_tqdm,
                                                 override_bs=override_bs)
            for i, r in zip(idx, done, strict=True):
                out[i] = r
        return out

    def _model_call(self, inps, attn_mask=None, labels=None):
        if attn_mask is not None or labels is not None:  # seq2seq: HFLM's own path
            return super()._model_call(inps, attn_mask=attn_mask, labels=labels)
        keep = self.keep_last(inps)
        # the prefix must end before the kept window, so every kept logit comes from the second call
        shared = self.shared_prefix(inps, inps.shape[1] - keep) if self.share_prefix and len(inps) > 1 else 0
        with torch.no_grad(), torch.autocast(device_type=self.device.type, dtype=self.mixed_precision_dtype,
                                             enabled=self.mixed_precision_dtype is not None):
            try:
                if shared < MIN_SHARED_PREFIX:
                    return self.model(inps, logits_to_keep=keep).logits
                cache = self.model(inps[:1, :shared], use_cache=True, logits_to_keep=1).past_key_values
                cache.batch_repeat_interleave(len(inps))
                return self.model(inps[:, shared:], past_key_values=cache, use_cache=True, logits_to_keep=keep).logits
            except TypeError as e:  # an architecture without logits_to_keep: all positions, as HFLM does
                if "logits_to_keep" not in str(e):
                    raise
                return self.model(inps).logits

    def _select_cont_toks(self, logits, contlen=None, inplen=None):
        if self.backend == "causal" and contlen and inplen is not None and inplen - contlen < 0:
            raise RuntimeError(f"an answer of {contlen} tokens is longer than max_answer_tokens="
                               f"{self.max_answer_tokens}: its logits were not kept")
        return super()._select_cont_toks(logits, contlen=contlen, inplen=inplen)
