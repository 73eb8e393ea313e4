"""The supervised fine-tuning objective: next-token NLL on the chosen replies, never on prompt tokens.

"SFT on preferred completions" (Rafailov et al., 2023, §5): items are training pairs, and each is used through its
chosen reply only. A sequence is `render_for_completion(prefix)` + chosen + `<|assistant_end|>`; the loss is the mean
token NLL over the reply tokens of the global batch (`response_mask`), so a long reply weighs by its length, as in
nanochat's SFT. Statistics: loss (= mean reply-token NLL), perplexity, replies, reply tokens. Evaluation: held-out
reply NLL and perplexity overall, per source and per density quintile.

This module knows the policy and its loss; not files, flags or the loop's mechanics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from katcli.model.gpt import GPT
from katcli.model.logprobs import token_logprobs
from katcli.model.run_meta import POLICY_KIND
from katcli.train.batching import MicroBatch
from katcli.train.metrics import NLLReport, summarize_nll
from katcli.train.metrics_log import rounded
from katcli.train.objective import Stats, load_module_state, module_state, ratio
from katcli.train.objectives.encoded import EncodedObjective
from katcli.train.rm_sft_losses import token_nll_sum
from katcli.train.seq_scoring import summed_reply_logprobs
from katcli.train.sequences import EncodedSequences


class SFTObjective(EncodedObjective):
    kind = POLICY_KIND

    def __init__(self, gpt: GPT, enc: EncodedSequences, **shared: Any) -> None:
        super().__init__(gpt, enc, **shared)
        self.gpt = gpt

    def prepare(self, step: int, items: np.ndarray, *, micro_batch_size: int) -> Sequence[MicroBatch]:
        return [mb for _, mb in self.collated(items, micro_batch_size)]

    def loss_denominator(self, micros: Sequence[MicroBatch]) -> float:
        return float(sum(mb.response_tokens for mb in micros))

    def loss(self, model: torch.nn.Module, mb: MicroBatch, *, pass_index: int) -> tuple[torch.Tensor, Stats]:
        device = self.gpt.device
        ids = torch.from_numpy(mb.ids).to(device, non_blocking=True)
        mask = torch.from_numpy(mb.response_mask()).to(device, non_blocking=True)
        logp = token_logprobs(model, ids)
        assert isinstance(logp, torch.Tensor)
        total = token_nll_sum(logp, mask)
        stats: Stats = {
            "nll": total, "reply_tokens": mb.response_tokens, "replies": mb.n_pairs,
            "tokens": mb.real_tokens, "pad_tokens": mb.pad_tokens,
        }
        return total, stats

    def summarize(self, sums: Mapping[str, float]) -> dict[str, Any]:
        nll = ratio(sums["nll"], sums["reply_tokens"])
        return {
            "loss": rounded(nll),
            "perplexity": rounded(math.exp(nll)) if math.isfinite(nll) and nll < 700 else None,
            "replies": int(sums["replies"]),
            "reply_tokens": int(sums["reply_tokens"]),
        }

    def evaluate(self, step: int) -> NLLReport | None:
        if self.heldout is None:
            return None
        h = self.heldout
        sums, counts = summed_reply_logprobs(
            self.gpt, self.enc, h.indices, batch_size=self.eval_batch_size, pad_id=self.pad_id,
            device=self.gpt.device, dist=self.dist, progress=self.progress, task="evaluating",
        )
        return summarize_nll(-sums[:, 0], counts[:, 0], h.sources, h.prefix_ids, h.weights)

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        return module_state(self.gpt)

    def load_checkpoint_state(self, state: Mapping[str, torch.Tensor]) -> None:
        load_module_state(self.gpt, state)



