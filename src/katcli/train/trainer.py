"""The reward-model training loop: sample, forward chosen+rejected, Bradley–Terry, AdamW, log, evaluate, save.

One optimizer step consumes one global batch from the sampler. Under torchrun each rank takes its share
(`sampler.shard`), splits it into micro-batches (gradient accumulation) and DDP averages the gradients; the loss of
a micro-batch is its pairs' summed loss divided by the rank's share, so the averaged gradient is exactly the mean
over the global batch. Then: gradient clipping, AdamW with warmup + cosine (`schedule.lr_at`), bf16 autocast on
CUDA (inside the GPT), fp32 on CPU.

Every step appends one line to `metrics.jsonl` (loss, accuracy, margin, reward mean/std, lr, gradient norm, tokens
and pad fraction — no wall-clock values, so identical runs write identical files); evaluations append an `eval`
line. Checkpoints carry the optimizer state, the sample stream's position and the RNG state, so a run resumed from
step `s` computes exactly what the uninterrupted run computed after step `s` (on the same device and thread count).
Only rank 0 writes anything.

This module knows models, optimizers and the loop; not the workspace, manifest, CLI or where the data came from.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from katcli.errors import KatError
from katcli.progress import ProgressFn, no_progress
from katcli.train.batching import collate, split_micro
from katcli.train.ddp import DistContext
from katcli.train.evaluate import evaluate
from katcli.train.losses import pair_loss
from katcli.train.metrics import EvalReport
from katcli.train.reward_model import RewardModel
from katcli.train.rm_checkpoint import METRICS_FILE, save_rm_checkpoint
from katcli.train.sampler import PairSampler, shard
from katcli.train.schedule import lr_at
from katcli.train.sequences import EncodedPairs

StepCallback = Callable[[dict[str, Any]], None]


@dataclass
class TrainSettings:
    max_steps: int
    batch_size: int  # pairs per optimizer step, over all ranks
    micro_batch_size: int  # pairs per forward pass on one rank
    lr: float
    warmup_steps: int
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    center_coef: float = 0.0
    eval_every: int = 0  # 0: evaluate only at the end
    save_every: int = 0  # 0: save only at the end
    pad_to: int | None = None  # pad every micro-batch to this width instead of its longest row (baseline)
    eval_batch_size: int = 32
    seed: int = 0  # seeds torch's global RNG on a fresh run, so the saved RNG state is reproducible too


@dataclass
class EvalSet:
    """Held-out pairs: indices into the encoded pairs plus what the breakdowns need per index."""

    indices: np.ndarray
    sources: list[str]
    prefix_ids: list[str]
    weights: Mapping[str, float] | None = None


@dataclass
class TrainOutcome:
    step: int
    start_step: int
    eval: EvalReport | None
    files: list[Path] = field(default_factory=list)
    real_tokens: int = 0
    pad_tokens: int = 0
    train_seconds: float = 0.0
    last: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.real_tokens / self.train_seconds if self.train_seconds > 0 else 0.0

    @property
    def pad_fraction(self) -> float:
        total = self.real_tokens + self.pad_tokens
        return self.pad_tokens / total if total else 0.0


def _r(x: float) -> float | None:
    return None if not math.isfinite(x) else float(f"{x:.6g}")


class MetricsLog:
    """`metrics.jsonl`, appended line by line; on resume, lines after the checkpoint's step are dropped."""

    def __init__(self, path: Path | None, *, resume_step: int | None) -> None:
        self.path = path
        self._fh = None
        if path is None:
            return
        kept: list[str] = []
        if resume_step is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    if int(json.loads(line)["step"]) <= resume_step:
                        kept.append(line)
                except (ValueError, KeyError, TypeError):
                    break  # a torn last line from a killed run
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "w", encoding="utf-8", newline="\n")
        for line in kept:
            self._fh.write(line + "\n")
        self._fh.flush()

    def write(self, record: Mapping[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class Trainer:
    def __init__(
        self,
        rm: RewardModel,
        enc: EncodedPairs,
        train_index: np.ndarray,
        sampler: PairSampler,
        settings: TrainSettings,
        *,
        eval_set: EvalSet | None,
        dist: DistContext,
        pad_id: int,
        out_dir: Path | None,
        meta_fn: Callable[[int, EvalReport | None], dict[str, Any]] | None = None,
        progress: ProgressFn = no_progress,
        on_step: StepCallback | None = None,
    ) -> None:
        self.rm = rm
        self.enc = enc
        self.train_index = np.asarray(train_index, dtype=np.int64)
        self.sampler = sampler
        self.s = settings
        self.eval_set = eval_set
        self.dist = dist
        self.device = dist.device
        self.pad_id = pad_id
        self.out_dir = out_dir if dist.is_main else None
        self.meta_fn = meta_fn or (lambda step, report: {})
        self.progress = progress if dist.is_main else no_progress
        self.on_step = on_step if dist.is_main else None
        self.params = rm.trainable_parameters()
        self.optimizer = torch.optim.AdamW(
            self.params, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay
        )
        self.start_step = 0
        self.last_eval: EvalReport | None = None

    # ---------------------------------------------------------------------------------------------- resume

    def restore(self, step: int, optim_state: Mapping[str, Any]) -> None:
        """Continue after `step` from a checkpoint's optimizer file (model weights are loaded by the caller)."""
        sampler_state = optim_state.get("sampler", {})
        if sampler_state.get("fingerprint") != self.sampler.fingerprint():
            raise KatError(
                "the checkpoint was trained on a different sample stream (pairs, weights, seed or batch size differ)",
                hint="resume with the same inputs and flags, or drop --resume to start over",
            )
        self.optimizer.load_state_dict(optim_state["optimizer"])
        if isinstance(optim_state.get("torch_rng"), torch.Tensor):
            torch.set_rng_state(optim_state["torch_rng"])
        self.start_step = int(step)

    def _optim_state(self, step: int) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "sampler": self.sampler.state(step),
            "torch_rng": torch.get_rng_state(),
            "step": step,
        }

    # ---------------------------------------------------------------------------------------------- loop

    def _wrapped(self) -> torch.nn.Module:
        if not self.dist.distributed:
            return self.rm
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        # Buffers are the deterministic rotary tables: nothing to broadcast (and gloo has no bf16 broadcast).
        return DDP(self.rm, device_ids=ids)

    def evaluate(self, step: int) -> EvalReport | None:
        if self.eval_set is None:
            return None
        es = self.eval_set
        report = evaluate(
            self.rm, self.enc, es.indices, sources=es.sources, prefix_ids=es.prefix_ids, weights=es.weights,
            batch_size=self.s.eval_batch_size, pad_id=self.pad_id, device=self.device, dist=self.dist,
            progress=self.progress,
        )
        self.last_eval = report
        return report

    def _save(self, step: int, report: EvalReport | None) -> list[Path]:
        files: list[Path] = []
        if self.out_dir is not None:
            files = save_rm_checkpoint(self.out_dir, step, self.rm, self.meta_fn(step, report), self._optim_state(step))
        self.dist.barrier()
        return files

    def train(self) -> TrainOutcome:
        s = self.s
        model = self._wrapped()
        self.rm.train()
        log = MetricsLog(
            self.out_dir / METRICS_FILE if self.out_dir is not None else None,
            resume_step=self.start_step if self.start_step > 0 else None,
        )
        outcome = TrainOutcome(step=self.start_step, start_step=self.start_step, eval=None)
        if self.start_step == 0:
            # Whatever ran earlier in this process must not leak into the run (or its checkpointed RNG state).
            torch.manual_seed(s.seed)
        files: list[Path] = []
        try:
            self.progress("training", self.start_step, s.max_steps)
            for step in range(self.start_step, s.max_steps):
                t0 = time.perf_counter()
                record = self._step(model, step)
                outcome.train_seconds += time.perf_counter() - t0
                outcome.real_tokens += record["tokens"]
                outcome.pad_tokens += record["pad_tokens"]
                done = step + 1
                log.write(record)
                outcome.step, outcome.last = done, record
                if self.on_step is not None:
                    live = dict(record)
                    live["tokens_per_s"] = outcome.tokens_per_s
                    self.on_step(live)
                self.progress("training", done, s.max_steps)
                final = done == s.max_steps
                report = None
                if final or (s.eval_every and done % s.eval_every == 0):
                    report = self.evaluate(done)
                    if report is not None:
                        log.write({"step": done, "type": "eval", **report.to_json()})
                if final or (s.save_every and done % s.save_every == 0):
                    files = self._save(done, report if report is not None else self.last_eval)
            if self.start_step >= s.max_steps:  # resumed a finished run: re-evaluate and re-save the last step
                report = self.evaluate(s.max_steps)
                files = self._save(s.max_steps, report)
                outcome.step = s.max_steps
        finally:
            log.close()
        outcome.eval = self.last_eval
        outcome.files = files
        return outcome

    def _step(self, model: torch.nn.Module, step: int) -> dict[str, Any]:
        s = self.s
        lr = lr_at(step, peak=s.lr, total_steps=s.max_steps, warmup_steps=s.warmup_steps, min_ratio=s.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = self.train_index[self.sampler.batch(step)]
        mine = shard(batch, self.dist.rank, self.dist.world_size)
        micros = split_micro(mine, s.micro_batch_size)
        self.optimizer.zero_grad(set_to_none=True)
        # loss, bt, correct, margin, reward sum, reward² sum, pairs, real tokens, pad tokens
        acc = torch.zeros(9, dtype=torch.float64, device=self.device)
        for k, idx in enumerate(micros):
            mb = collate(self.enc, idx, pad_id=self.pad_id, pad_to=s.pad_to)
            ids = torch.from_numpy(mb.ids).to(self.device, non_blocking=True)
            lengths = torch.from_numpy(mb.lengths).to(self.device, non_blocking=True)
            sync = k == len(micros) - 1 or not self.dist.distributed
            ctx = contextlib.nullcontext() if sync else model.no_sync()  # type: ignore[operator]
            with ctx:
                rewards = model(ids, lengths)
                m = mb.n_pairs
                pl = pair_loss(rewards[:m], rewards[m:], center_coef=s.center_coef)
                (pl.total.sum() / len(mine)).backward()
            r = rewards.detach().double()
            acc += torch.stack(
                [
                    pl.total.detach().double().sum(), pl.bradley_terry.detach().double().sum(),
                    pl.correct.double().sum(), pl.margin.double().sum(), r.sum(), r.square().sum(),
                    torch.tensor(float(m), dtype=torch.float64, device=self.device),
                    torch.tensor(float(mb.real_tokens), dtype=torch.float64, device=self.device),
                    torch.tensor(float(mb.pad_tokens), dtype=torch.float64, device=self.device),
                ]
            )
        clip = s.grad_clip if s.grad_clip > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, clip))
        self.optimizer.step()
        self.dist.all_reduce_sum(acc)
        loss, bt, correct, margin, r_sum, r_sq, n, real, pad = acc.tolist()
        mean_r = r_sum / (2 * n)
        return {
            "step": step + 1,
            "lr": _r(lr),
            "loss": _r(loss / n),
            "bt_loss": _r(bt / n),
            "accuracy": _r(correct / n),
            "margin": _r(margin / n),
            "reward_mean": _r(mean_r),
            "reward_std": _r(math.sqrt(max(0.0, r_sq / (2 * n) - mean_r * mean_r))),
            "grad_norm": _r(grad_norm),
            "pairs": int(n),
            "tokens": int(real),
            "pad_tokens": int(pad),
            "pad_fraction": _r(pad / (real + pad)) if real + pad else 0.0,
        }
