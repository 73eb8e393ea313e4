"""Pure losses: the reward model's Bradley–Terry on reward differences, plus an optional reward-centering term.

`bradley_terry(r_c, r_r) = −log σ(r_c − r_r)` per pair: the negative log-likelihood that the chosen reply is
preferred under the Bradley–Terry model. It only sees the difference, so rewards can drift by any constant;
`centering = (r_c + r_r)²` (Eisenstein et al., 2023) pulls each pair's mean reward toward zero when its
coefficient is positive, which keeps rewards comparable across prompts without changing the preference fit.
`token_nll_sum` is SFT's: the summed negative log-likelihood of the reply tokens only.

Pure functions of tensors: nothing here knows models, batches, ranks or optimizers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class PairLoss:
    """Per-pair terms; `total` is what is minimised (summed or averaged by the caller)."""

    total: torch.Tensor
    bradley_terry: torch.Tensor
    centering: torch.Tensor
    margin: torch.Tensor
    correct: torch.Tensor


def bradley_terry(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """`−log σ(r_c − r_r)`, elementwise (numerically stable for large margins)."""
    return -F.logsigmoid(r_chosen - r_rejected)


def centering(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """`(r_c + r_r)²`, elementwise: zero when the pair's two rewards are centred on zero."""
    return (r_chosen + r_rejected).square()


def pair_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, *, center_coef: float = 0.0) -> PairLoss:
    """All per-pair quantities training logs, computed once."""
    bt = bradley_terry(r_chosen, r_rejected)
    cen = centering(r_chosen, r_rejected)
    total = bt + center_coef * cen if center_coef else bt
    margin = (r_chosen - r_rejected).detach()
    return PairLoss(total=total, bradley_terry=bt, centering=cen, margin=margin, correct=(margin > 0).float())


def token_nll_sum(token_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`−Σ log p(token)` over the masked (reply) tokens: SFT's loss before averaging over the batch's reply tokens."""
    return -(token_logprobs * mask.to(token_logprobs.dtype)).sum()
