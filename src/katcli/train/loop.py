"""The one training loop every objective runs in: sample, shard, accumulate, clip, step, log, evaluate, save.

One optimizer step consumes one global batch of items from the sampler. Under torchrun each rank takes its share
(`sampler.shard`); the objective turns it into micro-batches (gradient accumulation); DDP averages the gradients
(or, with `fsdp`, FSDP2 shards the model and reduce-scatters them: `katcli.train.fsdp`).
Each micro-batch's summed loss is divided by the step's global loss denominator (summed over ranks) times the
world size, so after DDP's average the gradient is exactly the mean over the global batch — over pairs, reply tokens
or whatever the objective averages over — for any world size and micro-batch size. Then: gradient clipping, AdamW
with warmup + cosine (`schedule.lr_at`), bf16 autocast on CUDA (inside the GPT), fp32 on CPU.

Every step appends one line to `metrics.jsonl` (the objective's named statistics, learning rate, gradient norm,
tokens and pad fraction — no wall-clock values, so identical runs write identical files); evaluations append an
`eval` line. Checkpoints carry the optimizer state, the sample stream's position and the RNG state, so a run resumed
from step `s` computes exactly what the uninterrupted run computed after step `s` (on the same device and thread
count). Only rank 0 writes anything.

This module knows optimizers, ranks and the cadence; not the workspace, manifest, CLI, data formats or losses.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from katcli.errors import KatError
from katcli.progress import ProgressFn, no_progress
from katcli.train.ddp import DistContext
from katcli.train.fsdp import (
    full_optimizer_state,
    full_parameters,
    load_full_optimizer_state,
    materialize,
    scalar,
    set_gradient_sync,
    shard_model,
    state_bytes,
)
from katcli.train.metrics_log import METRICS_FILE, MetricsLog, rounded
from katcli.train.objective import EvalResult, Objective, add_stats
from katcli.train.run_dir import save_step
from katcli.train.sampler import WeightedSampler, shard
from katcli.train.schedule import lr_at

StepCallback = Callable[[dict[str, Any]], None]
MetaFn = Callable[[int, "EvalResult | None"], dict[str, Any]]


@dataclass
class LoopSettings:
    max_steps: int
    micro_batch_size: int  # items per forward pass on one rank
    lr: float
    warmup_steps: int
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 0  # 0: evaluate only at the end
    save_every: int = 0  # 0: save only at the end
    seed: int = 0  # seeds torch's global RNG on a fresh run, so the saved RNG state is reproducible too
    fsdp: bool = False  # shard the model over the ranks (FSDP2) instead of replicating it (DDP)


@dataclass
class TrainOutcome:
    step: int
    start_step: int
    eval: EvalResult | None
    files: list[Path] = field(default_factory=list)
    real_tokens: int = 0
    pad_tokens: int = 0
    train_seconds: float = 0.0
    prepare_seconds: float = 0.0  # of train_seconds: building micro-batches (GRPO: rollouts and rewards)
    state_bytes: int = 0  # parameters + gradients + optimizer state held by this process at the end
    last: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.real_tokens / self.train_seconds if self.train_seconds > 0 else 0.0

    @property
    def pad_fraction(self) -> float:
        total = self.real_tokens + self.pad_tokens
        return self.pad_tokens / total if total else 0.0


class TrainingLoop:
    def __init__(
        self,
        objective: Objective,
        train_index: np.ndarray,
        sampler: WeightedSampler,
        settings: LoopSettings,
        *,
        dist: DistContext,
        out_dir: Path | None,
        meta_fn: MetaFn | None = None,
        progress: ProgressFn = no_progress,
        on_step: StepCallback | None = None,
    ) -> None:
        self.obj = objective
        self.train_index = np.asarray(train_index, dtype=np.int64)
        self.sampler = sampler
        self.s = settings
        self.dist = dist
        self.device = dist.device
        self.out_dir = out_dir if dist.is_main else None
        self.meta_fn = meta_fn or (lambda step, report: {})
        self.progress = progress if dist.is_main else no_progress
        self.on_step = on_step if dist.is_main else None
        self.sharded = settings.fsdp and dist.distributed
        if self.sharded:  # before the optimizer: it must hold the sharded parameters
            shard_model(objective.module, device=dist.device, world_size=dist.world_size)
        self.params = objective.trainable_parameters()
        self.optimizer = torch.optim.AdamW(
            self.params, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay
        )
        self.start_step = 0
        self.last_eval: EvalResult | None = None
        self._prepare_s = 0.0

    # ---------------------------------------------------------------------------------------------- resume

    def restore(self, step: int, optim_state: Mapping[str, Any]) -> None:
        """Continue after `step` from a checkpoint's optimizer file (model weights are loaded by the caller)."""
        sampler_state = optim_state.get("sampler", {})
        if sampler_state.get("fingerprint") != self.sampler.fingerprint():
            raise KatError(
                "the checkpoint was trained on a different sample stream (pairs, weights, seed or batch size differ)",
                hint="resume with the same inputs and flags, or drop --resume to start over",
            )
        if self.sharded:
            load_full_optimizer_state(self.obj.module, self.optimizer, optim_state["optimizer"])
        else:
            self.optimizer.load_state_dict(optim_state["optimizer"])
        if isinstance(optim_state.get("torch_rng"), torch.Tensor):
            torch.set_rng_state(optim_state["torch_rng"])
        if "objective" in optim_state:  # what an objective trains besides its model file (PPO's critic)
            self.obj.load_training_state(optim_state["objective"])
        self.start_step = int(step)

    def _optim_state(self, step: int) -> dict[str, Any]:
        # Under --fsdp the state is gathered whole, in the unsharded layout: the run resumes with or without it.
        optimizer = full_optimizer_state(self.obj.module, self.optimizer) if self.sharded else self.optimizer.state_dict()
        out = {
            "optimizer": optimizer,
            "sampler": self.sampler.state(step),
            "torch_rng": torch.get_rng_state(),
            "step": step,
        }
        extra = getattr(self.obj, "training_state", None)
        if extra is not None:
            out["objective"] = extra()
        return out

    # ---------------------------------------------------------------------------------------------- loop

    def _wrapped(self) -> torch.nn.Module:
        if not self.dist.distributed or self.sharded:  # FSDP shards the module in place (`__init__`)
            return self.obj.module
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        # Buffers are the deterministic rotary tables: nothing to broadcast (and gloo has no bf16 broadcast).
        # torch 2.13 deprecates the flag, but its replacement still broadcasts at init, so keep it and its warning
        # out of the user's console.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`broadcast_buffers` is deprecated", category=FutureWarning)
            return DDP(self.obj.module, device_ids=ids, broadcast_buffers=False)

    def _whole_model(self, needed: bool = True) -> contextlib.AbstractContextManager[None]:
        """The sharded model gathered for code that calls it outside the training forward (rollouts, evaluation)."""
        return full_parameters(self.obj.module) if self.sharded and needed else contextlib.nullcontext()

    def evaluate(self, step: int) -> EvalResult | None:
        with self._whole_model():
            report = self.obj.evaluate(step)
        if report is not None:
            self.last_eval = report
        return report

    def _save(self, step: int, report: EvalResult | None) -> list[Path]:
        files: list[Path] = []
        if self.sharded:  # collectives: every rank gathers, rank 0 writes
            state, optim = materialize(self.obj.checkpoint_state()), self._optim_state(step)
        elif self.out_dir is not None:
            state, optim = self.obj.checkpoint_state(), self._optim_state(step)
        if self.out_dir is not None:
            meta = {"kind": self.obj.kind, **self.meta_fn(step, report)}
            files = save_step(self.out_dir, step, state, meta, optim)
            export = getattr(self.obj.module, "export_pretrained", None)  # HF backbones: save_pretrained too
            if export is not None:
                files = [*files, *export(self.out_dir, state=state if self.sharded else None)]
        self.dist.barrier()
        return files

    def train(self) -> TrainOutcome:
        s = self.s
        model = self._wrapped()
        self.obj.module.train()
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
                elapsed = time.perf_counter() - t0
                outcome.train_seconds += elapsed
                outcome.prepare_seconds += self._prepare_s
                outcome.real_tokens += record["tokens"]
                outcome.pad_tokens += record["pad_tokens"]
                done = step + 1
                log.write(record)
                outcome.step, outcome.last = done, record
                if self.on_step is not None:
                    live = dict(record)
                    live["tokens_per_s"] = outcome.tokens_per_s
                    live["update_s"] = elapsed - self._prepare_s
                    # Wall-clock splits an objective measures itself (never in metrics.jsonl: not reproducible).
                    live.update(getattr(self.obj, "live_stats", dict)())
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
        outcome.state_bytes = state_bytes(self.params, self.optimizer)
        return outcome

    def _step(self, model: torch.nn.Module, step: int) -> dict[str, Any]:
        s = self.s
        lr = lr_at(step, peak=s.lr, total_steps=s.max_steps, warmup_steps=s.warmup_steps, min_ratio=s.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = self.train_index[self.sampler.batch(step)]
        mine = shard(batch, self.dist.rank, self.dist.world_size)
        t0 = time.perf_counter()
        with self._whole_model(getattr(self.obj, "prepare_runs_model", False)):
            micros = self.obj.prepare(step, mine, micro_batch_size=s.micro_batch_size)
        self._prepare_s = time.perf_counter() - t0
        denom = torch.tensor([float(self.obj.loss_denominator(micros))], dtype=torch.float64, device=self.device)
        self.dist.all_reduce_sum(denom)
        # Each rank's share of the denominator: DDP averages over ranks, so this makes the result a global mean.
        share = float(denom.item()) / self.dist.world_size
        sums: dict[str, torch.Tensor] = {}
        grad_norm = 0.0
        select = getattr(self.obj, "pass_micros", None)  # PPO: each update (pass) on its own minibatch
        for pass_index in range(self.obj.passes):
            self.optimizer.zero_grad(set_to_none=True)
            part = micros
            if select is not None:
                part = select(micros, pass_index)
                den = torch.tensor([float(self.obj.loss_denominator(part))], dtype=torch.float64, device=self.device)
                self.dist.all_reduce_sum(den)
                share = float(den.item()) / self.dist.world_size
            for k, micro in enumerate(part):
                sync = k == len(part) - 1 or not self.dist.distributed
                if self.sharded:
                    set_gradient_sync(model, sync)
                    ctx = contextlib.nullcontext()
                else:
                    ctx = contextlib.nullcontext() if sync else model.no_sync()  # type: ignore[operator]
                with ctx:
                    loss_sum, stats = self.obj.loss(model, micro, pass_index=pass_index)
                    if share > 0:
                        (loss_sum / share).backward()
                add_stats(sums, stats, self.device)
            clip = s.grad_clip if s.grad_clip > 0 else float("inf")
            grad_norm = scalar(torch.nn.utils.clip_grad_norm_(self.params, clip))
            self.optimizer.step()
        keys = sorted(sums)
        if self.dist.distributed:
            # Every rank holds the same named statistics; the union of names is agreed on by construction.
            packed = torch.stack([sums[k] for k in keys]) if keys else torch.zeros(0, dtype=torch.float64)
            self.dist.all_reduce_sum(packed)
            sums = {k: packed[i] for i, k in enumerate(keys)}
        totals = {k: float(v.item()) for k, v in sums.items()}
        real, pad = int(totals.get("tokens", 0)), int(totals.get("pad_tokens", 0))
        record: dict[str, Any] = {"step": step + 1, "lr": rounded(lr)}
        record.update(self.obj.summarize(totals))
        record["grad_norm"] = rounded(grad_norm)
        record["tokens"] = real
        record["pad_tokens"] = pad
        record["pad_fraction"] = rounded(pad / (real + pad)) if real + pad else 0.0
        return record
