"""What a training objective plugs into the one training loop (`katcli.train.loop`).

The loop owns everything objectives share: the optimizer and schedule, gradient accumulation and clipping, DDP, the
sample stream and its sharding over ranks, the eval/save cadence, `metrics.jsonl`, checkpoints and bit-exact
`--resume`. An objective owns what differs between reward models, SFT, DPO and GRPO:

- `prepare(step, items)`: this rank's micro-batches for one step, from its share of the step's sampled items
  (indices into the objective's own data). GRPO does its rollouts here (and sets `prepare_runs_model`, so under
  `--fsdp` the loop gathers the sharded weights around it).
- `loss_denominator(micros)`: this rank's share of what the step's loss is averaged over (pairs, reply tokens, …).
  The loop sums it over ranks, so the gradient is exactly the mean over the *global* batch for any world size and
  any micro-batch split.
- `loss(model, micro)`: the micro-batch's *summed* loss (a tensor to back-propagate) and its named statistics as
  sums (`Stats`); the loop adds the sums over micro-batches and ranks, then `summarize` turns them into the step's
  metrics line. Names, not positions: a statistic is never identified by where it sits in a tensor.
- `evaluate(step)`: a report with `to_json()` (or None), written as an `eval` line and into checkpoint metas.
- `checkpoint_state()` / `load_checkpoint_state()`: the tensors of the model file; `kind` names the checkpoint.

Optional hooks: `pass_micros(micros, pass_index)` gives the micro-batches of one update when the passes do not all
use the whole batch (PPO's minibatches; each pass then has its own loss denominator, summed over ranks);
`training_state()` / `load_training_state()` carry what an objective trains besides its model file (PPO's critic)
inside the optimizer file, so `--resume` restores it while the model file stays a plain policy.

Statistics must include `tokens` and `pad_tokens` (the loop reports throughput and the pad fraction from them).
This module is only the contract; it knows no model, loss or data format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch

Stats = dict[str, "torch.Tensor | float | int"]


class EvalResult(Protocol):
    def to_json(self) -> dict[str, Any]: ...


class Objective(Protocol):
    kind: str  # checkpoint kind written into every meta ("kat-reward-model", "kat-policy", …)
    module: torch.nn.Module  # what is trained (the loop wraps it in DDP)
    passes: int  # optimizer updates per sampled batch (GRPO's --num-iterations; 1 elsewhere)

    def trainable_parameters(self) -> list[torch.nn.Parameter]: ...

    def prepare(self, step: int, items: np.ndarray, *, micro_batch_size: int) -> Sequence[Any]: ...

    def loss_denominator(self, micros: Sequence[Any]) -> float: ...

    def loss(self, model: torch.nn.Module, micro: Any, *, pass_index: int) -> tuple[torch.Tensor, Stats]: ...

    def summarize(self, sums: Mapping[str, float]) -> dict[str, Any]: ...

    def evaluate(self, step: int) -> EvalResult | None: ...

    def checkpoint_state(self) -> dict[str, torch.Tensor]: ...

    def load_checkpoint_state(self, state: Mapping[str, torch.Tensor]) -> None: ...


def add_stats(total: dict[str, torch.Tensor | float], stats: Mapping[str, Any], device: torch.device) -> None:
    """Accumulate named statistics in float64 (detached: statistics never carry gradients): tensor statistics as
    tensors on `device`, plain numbers (counts known on the host) as Python floats, so nothing is copied or read
    back per micro-batch; `stat_totals` reads a step's totals at once."""
    for key, value in stats.items():
        if isinstance(value, torch.Tensor):
            v: torch.Tensor | float = value.detach().double().sum().to(device)
        else:
            v = float(value)
        total[key] = total[key] + v if key in total else v


def stat_totals(
    sums: Mapping[str, torch.Tensor | float], device: torch.device, *, reduce: Any = None, extra: Sequence[Any] = ()
) -> tuple[dict[str, float], list[float]]:
    """The accumulated statistics as floats, in one device-to-host transfer: `reduce(tensor)` (an in-place sum over
    ranks, or None) runs on them packed in one float64 tensor; `extra` scalars (e.g. the gradient norm) ride along
    unreduced and come back as the second value."""
    keys = sorted(sums)
    packed = torch.stack([torch.as_tensor(sums[k], dtype=torch.float64, device=device) for k in keys]) if keys \
        else torch.zeros(0, dtype=torch.float64, device=device)
    if reduce is not None:
        reduce(packed)
    tail = [torch.as_tensor(x).detach().to(device=device, dtype=torch.float64).reshape(1) for x in extra]
    values = torch.cat([packed, *tail]).tolist()  # the step's one synchronisation
    return dict(zip(keys, values[: len(keys)], strict=True)), values[len(keys) :]


def ratio(num: float, den: float) -> float:
    """`num / den`, or NaN when nothing was counted (written as null in metrics)."""
    return num / den if den else float("nan")


class HeldOut:
    """Held-out rows: indices into the objective's encoded data plus what the breakdowns need per index."""

    def __init__(
        self,
        indices: np.ndarray,
        sources: Sequence[str],
        prefix_ids: Sequence[str],
        weights: Mapping[str, float] | None = None,
    ) -> None:
        self.indices = np.asarray(indices, dtype=np.int64)
        self.sources = list(sources)
        self.prefix_ids = list(prefix_ids)
        self.weights = weights


def module_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A policy's model-file tensors: its own `checkpoint_state()` when it has one (an HF backbone: with LoRA, the
    adapters only), else its whole state dict (kat's GPT)."""
    own = getattr(module, "checkpoint_state", None)
    if own is not None:
        return own()
    return {k: v.detach() for k, v in module.state_dict().items()}


def load_module_state(module: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """`module_state`'s tensors back into `module` (strictly)."""
    own = getattr(module, "load_checkpoint_state", None)
    if own is not None:
        own(state)
    else:
        module.load_state_dict(dict(state), strict=True)
