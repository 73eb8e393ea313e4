"""The DPO objective: the policy's reply log-probs against the frozen reference's, cached before training.

Items are training pairs. A micro-batch is `[2m, T]` (the m chosen sequences, then the m rejected ones, sharing
their prompt); one forward gives every token's log-prob (`katcli.model.logprobs`), summed over each reply and its
`<|assistant_end|>` (`response_mask`). The reference's sums for the same pairs come from `RefLogps`, computed once
before training (`katcli.train.ref_cache`), so no reference model is in memory while the policy trains. The loss is
`katcli.train.dpo_losses.dpo_loss` and the step's loss is its mean over the pairs of the global batch.

Statistics are named as TRL's DPOTrainer logs them: loss, rewards/chosen, rewards/rejected, rewards/accuracies,
rewards/margins, logps/chosen, logps/rejected (plus nll, the chosen replies' mean token NLL). Evaluation treats the
policy as an implicit reward model: on held-out pairs, a pair is right when `h > 0`; accuracy with Wilson intervals
and the mean margin `βh`, overall, per source and per density quintile (`katcli.train.metrics.summarize`), so DPO
policies and reward models are read the same way.

The reference-free losses (SimPO, ORPO) take `ref=None`: no reference numbers at all, and the held-out evaluation
reads the implicit reward their method defines (β × the reply's mean token log-prob).

This module knows the policy, its loss and the reference numbers; not files, flags or the loop's mechanics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from katcli.model.gpt import GPT
from katcli.model.logprobs import masked_sums, token_logprobs
from katcli.model.run_meta import POLICY_KIND
from katcli.progress import ProgressFn, no_progress
from katcli.train.batching import MicroBatch
from katcli.train.dpo_losses import METRIC_NAMES, DPOLossConfig, dpo_loss
from katcli.train.metrics import EvalReport, summarize
from katcli.train.metrics_log import rounded
from katcli.train.objective import HeldOut, Stats, load_module_state, module_state, ratio
from katcli.train.objectives.encoded import EncodedObjective
from katcli.train.ref_cache import RefLogps
from katcli.train.seq_scoring import summed_reply_logprobs
from katcli.train.sequences import EncodedSequences


@dataclass
class PairBatch:
    """One micro-batch of pairs and which pairs they are (to look up their reference log-probs)."""

    mb: MicroBatch
    pairs: np.ndarray  # indices into the encoded pairs


def implicit_reward_eval(
    gpt: torch.nn.Module,
    enc: EncodedSequences,
    ref: RefLogps | None,
    cfg: DPOLossConfig,
    heldout: HeldOut,
    *,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    dist: Any = None,
    progress: ProgressFn = no_progress,
) -> EvalReport:
    """Held-out accuracy of the implicit reward (`β(π − ref)`; `β·π/n` without a reference): `heldout.indices`
    index both `enc` and `ref`."""
    idx = heldout.indices
    policy, counts = summed_reply_logprobs(
        gpt, enc, idx, batch_size=batch_size, pad_id=pad_id, device=device, dist=dist, progress=progress,
        task="evaluating",
    )
    pc, pr = (torch.from_numpy(policy[:, j]) for j in (0, 1))
    rc, rr = ref.take(idx) if ref is not None else (None, None)
    out = dpo_loss(
        pc, pr, rc, rr, chosen_tokens=torch.from_numpy(counts[:, 0]), rejected_tokens=torch.from_numpy(counts[:, 1]),
        cfg=cfg,
    )
    # summarize() counts a pair right when its margin is > 0: the margin is βh with β > 0, so that is h > 0.
    report = summarize(out.margins.numpy(), out.loss.numpy(), heldout.sources, heldout.prefix_ids, heldout.weights)
    n = len(idx)
    report.extra.update(
        {
            "implicit_reward": True,
            "beta": cfg.beta,
            "rewards/chosen": rounded(float(out.rewards_chosen.mean())) if n else None,
            "rewards/rejected": rounded(float(out.rewards_rejected.mean())) if n else None,
            "logps/chosen": rounded(float(pc.mean())) if n else None,
            "logps/rejected": rounded(float(pr.mean())) if n else None,
        }
    )
    return report


class DPOObjective(EncodedObjective):
    kind = POLICY_KIND

    def __init__(
        self, gpt: GPT, enc: EncodedSequences, ref: RefLogps | None, *, loss_cfg: DPOLossConfig, **shared: Any
    ) -> None:
        if ref is None and not loss_cfg.reference_free:
            raise ValueError(f"--loss {loss_cfg.loss} needs the reference's log-probs")
        if ref is not None:
            if len(ref) != len(enc):
                raise ValueError(f"{len(ref)} reference log-probs for {len(enc)} pairs")
            reply = enc.length - enc.prompt_len[:, None]
            if not (np.array_equal(ref.chosen_tokens, reply[:, 0])
                    and np.array_equal(ref.rejected_tokens, reply[:, 1])):
                raise ValueError("the reference log-probs were computed on other reply tokens")
        super().__init__(gpt, enc, **shared)
        self.gpt = gpt
        self.ref = ref
        self.cfg = loss_cfg

    def prepare(self, step: int, items: np.ndarray, *, micro_batch_size: int) -> Sequence[PairBatch]:
        return [PairBatch(mb, idx) for idx, mb in self.collated(items, micro_batch_size)]

    def loss_denominator(self, micros: Sequence[PairBatch]) -> float:
        return float(sum(b.mb.n_pairs for b in micros))

    def loss(self, model: torch.nn.Module, batch: PairBatch, *, pass_index: int) -> tuple[torch.Tensor, Stats]:
        mb = batch.mb
        device = self.gpt.device
        ids = torch.from_numpy(mb.ids).to(device, non_blocking=True)
        mask = torch.from_numpy(mb.response_mask()).to(device, non_blocking=True)
        sums, counts = masked_sums(token_logprobs(model, ids), mask)  # type: ignore[arg-type]
        sums, counts = sums.double(), counts.double()  # the reference sums are float64: subtract in float64
        m = mb.n_pairs
        ref_c, ref_r = self.reference_logps(batch, device)
        out = dpo_loss(
            sums[:m], sums[m:], ref_c, ref_r, chosen_tokens=counts[:m], rejected_tokens=counts[m:], cfg=self.cfg
        )
        stats: Stats = dict(out.metric_sums())
        stats.update({"nll": out.nll.sum(), "pairs": m, "tokens": mb.real_tokens, "pad_tokens": mb.pad_tokens})
        return out.loss.sum(), stats

    def reference_logps(
        self, batch: PairBatch, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor] | tuple[None, None]:
        """The reference's summed (chosen, rejected) reply log-probs of a micro-batch's pairs: a cache lookup
        (none for a reference-free loss)."""
        return self.ref.take(batch.pairs, device) if self.ref is not None else (None, None)

    def summarize(self, sums: Mapping[str, float]) -> dict[str, Any]:
        n = sums["pairs"]
        out: dict[str, Any] = {name: rounded(ratio(sums[name], n)) for name in METRIC_NAMES}
        out["nll"] = rounded(ratio(sums["nll"], n))
        out["pairs"] = int(n)
        return out

    def evaluate(self, step: int) -> EvalReport | None:
        if self.heldout is None:
            return None
        return implicit_reward_eval(
            self.gpt, self.enc, self.ref, self.cfg, self.heldout, batch_size=self.eval_batch_size,
            pad_id=self.pad_id, device=self.gpt.device, dist=self.dist, progress=self.progress,
        )

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        return module_state(self.gpt)

    def load_checkpoint_state(self, state: Mapping[str, torch.Tensor]) -> None:
        load_module_state(self.gpt, state)
