"""The KTO objective: each pair is two unpaired examples, its chosen reply desirable and its rejected one not.

Items are training pairs (the sampler, density weighting and split are DPO's). A micro-batch is DPO's `[2m, T]`
(m chosen sequences, then the m rejected ones); the loss is `katcli.train.kto_losses.kto_loss` on the policy's
summed reply log-probs against the reference's, cached before training as DPO caches them (`RefLogps`), and the
step's loss is its mean over the 2 × pairs examples of the global batch.

The reference point z₀ comes from mismatched examples, as TRL builds them: each training pair's prompt with the
replies of a *partner* pair that answers another prompt (`kl_partners`: the next training pair in training order
whose prompt differs). Their reference log-probs are computed once before training (`kl_ref`); the policy's are
computed in `prepare`, without gradients (TRL computes them under `no_grad` too), for the step's pairs, and the
log-ratios are summed over ranks, so every rank uses the one z₀ of the global batch, for any world size.

Step metrics (TRL's KTOTrainer names, as means): loss, rewards/chosen, rewards/rejected, rewards/margins,
rewards/accuracies, logps/chosen, logps/rejected, kl (z₀). Evaluation reads the policy as an implicit reward model
`β(π − ref)` on held-out pairs, exactly as DPO's (`implicit_reward_eval`).

This module knows the policy, its loss and the reference numbers; not files, flags or the loop's mechanics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from katcli.model.gpt import GPT
from katcli.model.logprobs import masked_sums, token_logprobs
from katcli.train.dpo_losses import DPOLossConfig
from katcli.train.kto_losses import KTOLossConfig, kl_baseline, kto_loss
from katcli.train.metrics import EvalReport
from katcli.train.metrics_log import rounded
from katcli.train.objective import Stats, ratio
from katcli.train.objectives.dpo import PairBatch, implicit_reward_eval
from katcli.train.objectives.encoded import EncodedObjective
from katcli.train.ref_cache import RefLogps
from katcli.model.run_meta import POLICY_KIND
from katcli.train.seq_scoring import summed_reply_logprobs
from katcli.train.sequences import EncodedSequences

METRICS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
           "logps/rejected")


def kl_partners(rows: Sequence[int], prompt_ids: Sequence[str]) -> np.ndarray:
    """For each of `rows` (pair indices, in training order), the next row in that order with another prompt.

    Deterministic, so a resumed or resharded run builds the same mismatched examples. A single prompt has no
    mismatched partner: refused."""
    rows = list(rows)
    n = len(rows)
    out = np.empty(n, dtype=np.int64)
    for k, r in enumerate(rows):
        for j in range(1, n):
            other = rows[(k + j) % n]
            if prompt_ids[other] != prompt_ids[r]:
                out[k] = other
                break
        else:
            raise ValueError("KTO's KL reference point needs pairs of at least two different prompts")
    return out


class KTOObjective(EncodedObjective):
    kind = POLICY_KIND

    def __init__(
        self,
        gpt: GPT,
        enc: EncodedSequences,
        ref: RefLogps,
        *,
        kl_enc: EncodedSequences,
        kl_ref: RefLogps,
        kl_row: Mapping[int, int],
        loss_cfg: KTOLossConfig,
        **shared: Any,
    ) -> None:
        super().__init__(gpt, enc, **shared)
        if len(ref) != len(enc) or len(kl_ref) != len(kl_enc):
            raise ValueError("reference log-probs and encoded rows differ in number")
        self.gpt = gpt
        self.ref = ref
        self.kl_enc = kl_enc  # row kl_row[i]: pair i's prompt with its partner's chosen and rejected replies
        self.kl_ref = kl_ref
        self.kl_row = dict(kl_row)
        self.cfg = loss_cfg
        self.prepare_runs_model = True  # the mismatched examples' forward: under --fsdp the loop gathers weights
        self._z0 = torch.zeros((), dtype=torch.float64)

    def _step_baseline(self, items: np.ndarray) -> torch.Tensor:
        """z₀ of the global batch: Σ (π − ref) over every rank's mismatched examples / their number."""
        device = self.gpt.device
        rows = np.asarray([self.kl_row[int(i)] for i in items], dtype=np.int64)
        uniq, counts = np.unique(rows, return_counts=True)
        total = torch.zeros(2, dtype=torch.float64, device=device)
        if len(uniq):
            pol, _ = summed_reply_logprobs(self.gpt, self.kl_enc, uniq, batch_size=self.eval_batch_size, pad_id=self.pad_id,
                                    device=device)
            ref = np.stack([self.kl_ref.chosen[uniq], self.kl_ref.rejected[uniq]], axis=1)
            total[0] = float(((pol - ref).sum(axis=1) * counts).sum())
            total[1] = float(2 * counts.sum())
        if self.dist is not None:
            self.dist.all_reduce_sum(total)
        return kl_baseline(total[0].cpu(), int(total[1].item()))

    def prepare(self, step: int, items: np.ndarray, *, micro_batch_size: int) -> Sequence[PairBatch]:
        self._z0 = self._step_baseline(np.asarray(items, dtype=np.int64))
        return [PairBatch(mb, idx) for idx, mb in self.collated(items, micro_batch_size)]

    def loss_denominator(self, micros: Sequence[PairBatch]) -> float:
        return float(sum(2 * b.mb.n_pairs for b in micros))  # examples: each pair is two

    def loss(self, model: torch.nn.Module, batch: PairBatch, *, pass_index: int) -> tuple[torch.Tensor, Stats]:
        mb = batch.mb
        device = self.gpt.device
        ids = torch.from_numpy(mb.ids).to(device, non_blocking=True)
        mask = torch.from_numpy(mb.response_mask()).to(device, non_blocking=True)
        sums, _ = masked_sums(token_logprobs(model, ids), mask)  # type: ignore[arg-type]
        sums = sums.double()
        m = mb.n_pairs
        ref_c, ref_r = self.ref.take(batch.pairs, device)
        out = kto_loss(sums[:m], sums[m:], ref_c, ref_r, cfg=self.cfg, baseline=self._z0.to(device))
        margins = out.rewards_chosen - out.rewards_rejected
        stats: Stats = {
            "loss": (out.chosen_losses + out.rejected_losses).detach().sum(),
            "rewards/chosen": out.rewards_chosen.sum(), "rewards/rejected": out.rewards_rejected.sum(),
            "rewards/margins": margins.sum(), "rewards/accuracies": (margins > 0).double().sum(),
            "logps/chosen": sums[:m].detach().sum(), "logps/rejected": sums[m:].detach().sum(),
            "pairs": m, "tokens": mb.real_tokens, "pad_tokens": mb.pad_tokens,
        }
        return out.loss_sum, stats

    def summarize(self, sums: Mapping[str, float]) -> dict[str, Any]:
        n = sums["pairs"]
        out: dict[str, Any] = {name: rounded(ratio(sums[name], n)) for name in METRICS}
        out["loss"] = rounded(ratio(sums["loss"], 2 * n))  # the mean over examples, as TRL
        out["kl"] = rounded(float(self._z0))
        out["pairs"] = int(n)
        return out

    def evaluate(self, step: int) -> EvalReport | None:
        if self.heldout is None:
            return None
        return implicit_reward_eval(
            self.gpt, self.enc, self.ref, DPOLossConfig(beta=self.cfg.beta), self.heldout,
            batch_size=self.eval_batch_size, pad_id=self.pad_id, device=self.gpt.device, dist=self.dist,
            progress=self.progress,
        )

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self.gpt.state_dict().items()}

    def load_checkpoint_state(self, state: Mapping[str, torch.Tensor]) -> None:
        self.gpt.load_state_dict(dict(state), strict=True)
