"""Test kit for the training loop's contract: a toy objective any test (or a torchrun script) can run.

`ToyObjective` fits a linear model to a fixed regression task. It implements the objective protocol
(`katcli.train.objective`) and nothing more, and records every item index it was given per step, so tests can
check what the loop promises every objective: exact resume, one global batch sharded exactly once over ranks, and
rank-0-only writes. `run_toy(...)` builds the sampler and loop the way a pipeline stage does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

N_ITEMS = 64


class ToyReport:
    headline = "mse"

    def __init__(self, mse: float) -> None:
        self.mse = mse

    def to_json(self) -> dict[str, Any]:
        return {"overall": round(self.mse, 6)}


class ToyObjective:
    kind = "kat-toy"
    passes = 1

    def __init__(self, seed: int = 0, *, dropout: float = 0.1) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(N_ITEMS, 4, generator=gen)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(N_ITEMS, generator=gen)
        torch.manual_seed(seed)
        self.module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(dropout), torch.nn.Linear(8, 1))
        self.seen: list[tuple[int, list[int]]] = []

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.module.parameters())

    def prepare(self, step: int, items: np.ndarray, *, micro_batch_size: int) -> Sequence[np.ndarray]:
        self.seen.append((step, [int(i) for i in items]))
        return [items[i : i + micro_batch_size] for i in range(0, len(items), micro_batch_size)]

    def loss_denominator(self, micros: Sequence[np.ndarray]) -> float:
        return float(sum(len(m) for m in micros))

    def loss(self, model: torch.nn.Module, micro: np.ndarray, *, pass_index: int) -> tuple[torch.Tensor, dict]:
        idx = torch.from_numpy(np.asarray(micro, dtype=np.int64))
        err = (model(self.x[idx]).squeeze(-1) - self.y[idx]).square()
        return err.sum(), {"sq_err": err, "items": len(idx), "tokens": 4 * len(idx), "pad_tokens": 0}

    def summarize(self, sums: Mapping[str, float]) -> dict[str, Any]:
        return {"loss": round(sums["sq_err"] / sums["items"], 6), "items": int(sums["items"])}

    def evaluate(self, step: int) -> ToyReport:
        with torch.no_grad():
            self.module.eval()
            mse = float((self.module(self.x).squeeze(-1) - self.y).square().mean())
            self.module.train()
        return ToyReport(mse)

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self.module.state_dict().items()}

    def load_checkpoint_state(self, state: Mapping[str, torch.Tensor]) -> None:
        self.module.load_state_dict(dict(state))


def run_toy(
    out_dir: Path | None, *, max_steps: int = 10, save_every: int = 3, batch_size: int = 8, micro: int = 2,
    resume: bool = False, on_step: Any = None, dist: Any = None,
) -> tuple[ToyObjective, Any]:
    from katcli.model.checkpoint import find_last_step, load_checkpoint
    from katcli.train.ddp import DistContext
    from katcli.train.loop import LoopSettings, TrainingLoop
    from katcli.train.sampler import WeightedSampler, item_probabilities

    obj = ToyObjective()
    probs = item_probabilities([f"p{i % 16}" for i in range(N_ITEMS)])
    sampler = WeightedSampler(probs, np.arange(N_ITEMS) % 7, seed=1, batch_size=batch_size, pool_batches=4)
    settings = LoopSettings(max_steps=max_steps, micro_batch_size=micro, lr=1e-2, warmup_steps=2,
                            eval_every=4, save_every=save_every, seed=0)
    loop = TrainingLoop(obj, np.arange(N_ITEMS), sampler, settings, dist=dist or DistContext(), out_dir=out_dir,
                        meta_fn=lambda step, report: {"step": step}, on_step=on_step)
    if resume:
        assert out_dir is not None
        step = find_last_step(out_dir)
        ckpt = load_checkpoint(out_dir, step, load_optim=True)
        obj.load_checkpoint_state(ckpt.model_state)
        loop.restore(step, ckpt.optim_state)
    return obj, loop.train()
