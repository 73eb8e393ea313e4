"""The one training loop every objective runs in: sample, shard, accumulate, clip, step, log, evaluate, save.

One optimizer step consumes one global batch of items from the sampler. Under torchrun each rank takes its share
(`sampler.shard`); the objective turns it into micro-batches (gradient accumulation); DDP averages the gradients
(or, with `fsdp`, FSDP2 shards the model and reduce-scatters them: `katcli.train.fsdp`).
Each micro-batch's summed loss is divided by the step's global loss denominator (summed over ranks) times the
world size, so after DDP's average the gradient is exactly the mean over the global batch — over pairs, reply tokens
or whatever the objective averages over — for any world size and micro-batch size. Then: gradient clipping, AdamW
with warmup + cosine (`schedule.lr_at`), autocast to `--dtype` inside the model (bf16 on CUDA by default, fp32 on
CPU) and, for fp16, a gradient scaler. The statistics of a step are read back from the device once, at its end.

Every step appends one line to `metrics.jsonl` (the objective's named statistics, learning rate, gradient norm,
tokens and pad fraction — no wall-clock values, so identical runs write identical files); evaluations append an
`eval` line. Checkpoints carry the optimizer state, the sample stream's position and the RNG state, so a run resumed
from step `s` computes exactly what the uninterrupted run computed after step `s` (on the same device and thread
count). Only rank 0 writes anything.

With `--report-to`, the same lines (and the evaluations, and a final summary) also go to the experiment trackers
(`katcli.train.tracking.Trackers`), called from here only, on rank 0; a tracker never changes what is computed or
written, and one that fails is turned off with a warning.

This module knows optimizers, ranks and the cadence; not the workspace, manifest, CLI, data formats or losses.
"""

from __future__ import annotations

import contextlib
import math
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
    set_gradient_sync,
    shard_model,
    state_bytes,
    whole,
)
from katcli.train.metrics_log import METRICS_FILE, MetricsLog, rounded
from katcli.train.objective import EvalResult, Objective, add_stats, stat_totals
from katcli.train.run_dir import save_step
from katcli.train.sampler import WeightedSampler, shard
from katcli.train.schedule import lr_at
from katcli.train.tracking import Trackers, summary_metrics

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
    grad_scaler: bool = False  # fp16 compute: scale the loss so small gradients do not underflow (GradScaler)


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
        trackers: Trackers | None = None,
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
        self.trackers = trackers if dist.is_main else None
        self.sharded = settings.fsdp and dist.distributed
        if self.sharded:  # before the optimizer: it must hold the sharded parameters
            shard_model(objective.module, device=dist.device, world_size=dist.world_size)
        self.params = objective.trainable_parameters()
        self.optimizer = torch.optim.AdamW(
            self.params, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay
        )
        # Disabled (a no-op) unless --dtype fp16; its state is checkpointed only when enabled.
        self.scaler = torch.amp.GradScaler(dist.device.type, enabled=settings.grad_scaler)
        self.start_step = 0
        self.at_step = 1  # the step being computed (what a Ctrl-C reports)
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
        if self.scaler.is_enabled() and "grad_scaler" in optim_state:
            self.scaler.load_state_dict(optim_state["grad_scaler"])
        if "objective" in optim_state:  # what an objective trains besides its model file (PPO's critic)
            self.obj.load_training_state(optim_state["objective"])
        self.start_step = int(step)

    def _optim_state(self, step: int) -> dict[str, Any]:
        # Under --fsdp the state is gathered whole, in the unsharded layout: the run resumes with or without it.
        optimizer = full_optimizer_state(self.obj.module, self.optimizer) if self.sharded else self.optimizer.state_dict()
        state = {
            "optimizer": optimizer,
            "sampler": self.sampler.state(step),
            "torch_rng": torch.get_rng_state(),
            "step": step,
        }
        if self.scaler.is_enabled():
            state["grad_scaler"] = self.scaler.state_dict()
        extra = getattr(self.obj, "training_state", None)
        if extra is not None:
            state["objective"] = extra()
        return state

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
        trackers = self.trackers
        finished = False
        if trackers is not None:
            trackers.start(history=log.kept)
        try:
            self.progress("training", self.start_step, s.max_steps)
            for step in range(self.start_step, s.max_steps):
                self.at_step = step + 1
                t0 = time.perf_counter()
                record = self._step(model, step)
                elapsed = time.perf_counter() - t0
                outcome.train_seconds += elapsed
                outcome.prepare_seconds += self._prepare_s
                outcome.real_tokens += record["tokens"]
                outcome.pad_tokens += record["pad_tokens"]
                done = step + 1
                log.write(record)
                if trackers is not None:
                    trackers.log_step(record)
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
                if final or (s.eval_every and done % s.eval_every == 0) or (s.save_every and done % s.save_every == 0):
                    self._check_weights(done)  # a diverged model is never evaluated, saved or recorded
                if final or (s.eval_every and done % s.eval_every == 0):
                    report = self.evaluate(done)
                    if report is not None:
                        line = report.to_json()
                        log.write({"step": done, "type": "eval", **line})
                        if trackers is not None:
                            trackers.log_eval(done, line)
                if final or (s.save_every and done % s.save_every == 0):
                    files = self._save(done, report if report is not None else self.last_eval)
            if self.start_step >= s.max_steps:  # resumed a finished run: re-evaluate and re-save the last step
                report = self.evaluate(s.max_steps)
                files = self._save(s.max_steps, report)
                outcome.step = s.max_steps
            finished = True
        finally:
            log.close()
            if trackers is not None:
                last = self.last_eval.to_json() if finished and self.last_eval is not None else None
                trackers.finish(summary_metrics(step=outcome.step, tokens_per_s=outcome.tokens_per_s,
                                                pad_fraction=outcome.pad_fraction,
                                                train_seconds=outcome.train_seconds, report=last), ok=finished)
        outcome.eval = self.last_eval
        outcome.files = files
        outcome.state_bytes = state_bytes(self.params, self.optimizer)
        return outcome

    def _diverged(self, step: int, why: str | None = None) -> KatError:
        return KatError(
            f"loss is not finite at step {step}" + (f": {why}" if why else ""),
            hint=f"lower --lr (this run used {self.s.lr:g}), or check the data for empty or extreme items; "
            "nothing was recorded",
        )

    def _check_weights(self, step: int) -> None:
        """Refuse weights an update made non-finite (a learning rate far too high) before they are used or saved."""
        local = all(bool(torch.isfinite(p.to_local() if hasattr(p, "to_local") else p).all()) for p in self.params)
        if not self.dist.agree(local):
            raise self._diverged(step, "the update made the weights non-finite")

    def _global_denominator(self, micros: Any) -> float:
        """The step's loss denominator summed over ranks (computed on the host: one all-reduce under torchrun)."""
        local = float(self.obj.loss_denominator(micros))
        if not self.dist.distributed:
            return local
        denom = torch.tensor([local], dtype=torch.float64, device=self.device)
        self.dist.all_reduce_sum(denom)
        return float(denom.item())  # needed before the first backward: the one synchronisation it costs

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
        # Each rank's share of the denominator: DDP averages over ranks, so this makes the result a global mean.
        share = self._global_denominator(micros) / self.dist.world_size
        sums: dict[str, torch.Tensor | float] = {}
        grad_norm = torch.zeros((), device=self.device)
        select = getattr(self.obj, "pass_micros", None)  # PPO: each update (pass) on its own minibatch
        for pass_index in range(self.obj.passes):
            self.optimizer.zero_grad(set_to_none=True)
            part = micros
            if select is not None:
                part = select(micros, pass_index)
                share = self._global_denominator(part) / self.dist.world_size
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
                        self.scaler.scale(loss_sum / share).backward()
                add_stats(sums, stats, self.device)
            clip = s.grad_clip if s.grad_clip > 0 else float("inf")
            self.scaler.unscale_(self.optimizer)  # clip the true gradients (a no-op without fp16)
            grad_norm = whole(torch.nn.utils.clip_grad_norm_(self.params, clip))
            self.scaler.step(self.optimizer)  # fp16: skipped when a gradient overflowed, then the scale backs off
            self.scaler.update()
        # Every rank holds the same named statistics (the union of names is agreed on by construction): summed over
        # ranks in one all-reduce and read back, with the gradient norm, in one transfer — not one per statistic.
        reduce = self.dist.all_reduce_sum if self.dist.distributed else None
        totals, (grad_norm_value,) = stat_totals(sums, self.device, reduce=reduce, extra=[grad_norm])
        # A diverged step stops here, before anything is saved or recorded (the global norm and the rank-summed
        # statistics: every rank stops at the same step). Under fp16 an overflowed gradient is the scaler's
        # business (the step was skipped), so only the statistics decide there.
        if not math.isfinite(grad_norm_value) and not self.s.grad_scaler:
            raise self._diverged(step + 1, f"the gradient norm is {grad_norm_value}")
        if not all(math.isfinite(v) for v in totals.values()):
            raise self._diverged(step + 1)
        real, pad = int(totals.get("tokens", 0)), int(totals.get("pad_tokens", 0))
        record: dict[str, Any] = {"step": step + 1, "lr": rounded(lr)}
        record.update(self.obj.summarize(totals))
        record["grad_norm"] = rounded(grad_norm_value)
        record["tokens"] = real
        record["pad_tokens"] = pad
        record["pad_fraction"] = rounded(pad / (real + pad)) if real + pad else 0.0
        return record
