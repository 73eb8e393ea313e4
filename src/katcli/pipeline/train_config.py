"""The flags every `kat train …` objective shares, as one typed config whose errors name the flag.

`TrainConfig` holds the flags of `katcli.cli.train_options`; each objective subclasses it (frozen) for its own flags,
extends `validate` and, where its defaults differ, the `LR_SCRATCH`/`LR_INIT` class constants. `params()` is what the
manifest and checkpoint metas record, and what `--resume` compares. This module knows flags and their rules only.
"""

from __future__ import annotations

import os
import re
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, ClassVar

from katcli.devices import check_device
from katcli.errors import ConfigError

DEFAULT_DEPTH = 4
WEIGHTINGS = ("per-prompt", "per-pair")
# Recorded only when set, so the records of runs that do not use them are unchanged.
_RECORDED_WHEN_SET = ("chat_template", "trust_remote_code", "gradient_checkpointing", "fsdp")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class TrainConfig:
    """The flags every `kat train` objective takes; field names match the flags (`max_steps` ↔ `--max-steps`)."""

    LR_SCRATCH: ClassVar[float] = 1e-3
    LR_INIT: ClassVar[float] = 2e-5
    BATCH_FLAG: ClassVar[str] = "--batch-size"  # the flag that sets `batch_size` (GRPO: --prompts-per-step)
    # Flags added after runs were first recorded: left out of the record at their default, so the records (and
    # checkpoint metas) of runs that do not use them are byte-identical to before.
    RECORDED_UNLESS_DEFAULT: ClassVar[tuple[str, ...]] = ()

    name: str | None = None
    density_aware: bool = False
    pair_weighting: str | None = None
    init: str | None = None
    depth: int | None = None
    max_steps: int = 1000
    batch_size: int = 32
    micro_batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = 0.0
    warmup_steps: int | None = None
    grad_clip: float = 1.0
    max_len: int = 512
    max_response_len: int | None = None
    val_ratio: float = 0.05
    eval_every: int = 250
    save_every: int = 250
    bucketing: bool = True
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    force: bool = False
    # Hugging Face backbones (`--init hf:…`).
    chat_template: str | None = None
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False
    fsdp: bool = False  # shard over torchrun's ranks (FSDP2) instead of DDP; resumable with or without

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.name is not None and not _NAME_RE.match(self.name):
            raise ConfigError("--name must be letters, digits, '.', '_' or '-' (no slashes), starting alphanumeric")
        if self.init is not None and self.depth is not None:
            raise ConfigError("--init and --depth exclude each other: --init starts from a model, --depth from scratch")
        if self.depth is not None and self.depth < 1:
            raise ConfigError("--depth must be at least 1")
        if self.pair_weighting is not None:
            if self.pair_weighting not in WEIGHTINGS:
                raise ConfigError(f"--pair-weighting must be one of {', '.join(WEIGHTINGS)}")
            if not self.density_aware:
                raise ConfigError("--pair-weighting only applies with --density-aware")
        if self.max_steps < 1:
            raise ConfigError("--max-steps must be at least 1")
        if self.batch_size < 1:
            raise ConfigError(f"{self.BATCH_FLAG} must be at least 1")
        if self.micro_batch_size is not None and self.micro_batch_size < 1:
            raise ConfigError("--micro-batch-size must be at least 1")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError("--lr must be positive")
        if self.weight_decay < 0:
            raise ConfigError("--weight-decay must be 0 or more")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ConfigError("--warmup-steps must be 0 or more")
        if self.grad_clip < 0:
            raise ConfigError("--grad-clip must be 0 (off) or more")
        if self.max_len < 16:
            raise ConfigError("--max-len must be at least 16")
        if self.max_response_len is not None and not 1 <= self.max_response_len <= self.max_len - 8:
            raise ConfigError(f"--max-response-len must be between 1 and --max-len − 8 ({self.max_len - 8})")
        if not 0.0 < self.val_ratio < 1.0:
            raise ConfigError("--val-ratio must be between 0 and 1 (exclusive)")
        if self.eval_every < 0:
            raise ConfigError("--eval-every must be 0 (only at the end) or more")
        if self.save_every < 0:
            raise ConfigError("--save-every must be 0 (only at the end) or more")
        check_device(self.device)
        if self.threads is not None and self.threads < 1:
            raise ConfigError("--threads must be at least 1")
        if self.chat_template is not None and not os.path.isfile(self.chat_template):
            raise ConfigError(f"--chat-template {self.chat_template}: no such file")

    # ---------------------------------------------------------------------------------------------- resolved values

    @property
    def run_name(self) -> str:
        return self.name or ("density" if self.density_aware else "uniform")

    @property
    def weighting(self) -> str:
        if not self.density_aware:
            return "uniform"
        return self.pair_weighting or "per-prompt"

    @property
    def resolved_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return self.LR_INIT if self.init is not None else self.LR_SCRATCH

    @property
    def resolved_max_response_len(self) -> int:
        return self.max_response_len if self.max_response_len is not None else self.max_len // 2

    def params(self) -> dict[str, Any]:
        """The recorded parameters: every flag that shapes the model (not --force / --resume)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("force", "resume")}
        out["name"] = self.run_name
        out["pair_weighting"] = self.weighting
        out["lr"] = self.resolved_lr
        out["max_response_len"] = self.resolved_max_response_len
        for key in _RECORDED_WHEN_SET:
            if not out[key]:
                del out[key]
        defaults = {f.name: f.default for f in fields(self) if f.default is not MISSING}
        for key in self.RECORDED_UNLESS_DEFAULT:
            if out[key] == defaults[key]:
                del out[key]
        if self.chat_template is not None:
            out["chat_template"] = os.path.abspath(self.chat_template)
        if self.init is None:
            out["depth"] = self.depth if self.depth is not None else DEFAULT_DEPTH
        return out
