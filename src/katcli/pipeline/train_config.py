"""The flags of every `kat train` objective as typed, frozen configs: defaults, help and rules in one place.

Each field is one flag: its default, and in its metadata (TRL-style `field(metadata={"help": ...})`) the help text,
the metavar, the help panel and, for a choice, the registry it chooses from; `katcli.cli.config_options` builds the
Typer options from them. `TrainConfig` holds the shared flags; each objective subclasses it for its own flags and,
where its defaults differ, the `LR_SCRATCH`/`LR_INIT` constants (help text may name them as `{LR_INIT}`).
`validate` makes errors name the flag; `params()` is what the manifest and checkpoint metas record, and what
`--resume` compares. This module knows flags and their rules only.
"""

from __future__ import annotations

import os
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar

from katcli.devices import DEVICES, DTYPES, check_device, check_dtype
from katcli.errors import ConfigError
from katcli.train import loss_names as L
from katcli.train.tracking import check_installed, parse_report_to

DEFAULT_DEPTH = 4
WEIGHTINGS = ("per-prompt", "per-pair")
MIN_PROMPT = 8  # tokens a rendered GRPO prompt keeps at least (<|bos|>, the user turn's markers, a few words)
# Recorded only when set, so the records of runs that do not use them are unchanged.
_RECORDED_WHEN_SET = ("chat_template", "trust_remote_code", "gradient_checkpointing", "fsdp", "weights")
_LORA_FLAGS = ("lora_r", "lora_alpha", "lora_dropout", "lora_targets")  # recorded only with --lora-r > 0
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# Help panels.
MODEL = "Model"
SAMPLING = "Sampling & held-out set"
OPTIM = "Optimisation"
RUN = "Run"
UPSTREAM = "Upstream"
DPO = "DPO"
ROLLOUT = "Rollout"
GRPO_LOSS = "GRPO loss"
KTO = "KTO"
PPO = "PPO"
LORA = "LoRA (hf: backbones)"


def flag(default: Any, help: str, *, panel: str, metavar: str | None = None, choices: tuple[str, ...] = (),
         name: str | None = None) -> Any:
    """A config field that is a flag: `--field-name` (or `name`), shown with `help` under `panel`.

    `choices` is the registry the value is picked from (the metavar lists it); a boolean whose `name` starts with
    `--no-` is that flag inverted (`bucketing=True` is the absence of `--no-bucketing`).
    """
    meta = {"help": help, "panel": panel, "metavar": metavar or ("|".join(choices) if choices else None),
            "choices": choices, "name": name}
    return field(default=default, metadata=meta)


_INIT_HELP = (
    "Start from this model: a run name (models/, sft_checkpoints/, …; STAGE/NAME when several stages have it), a "
    "checkpoint directory, or a Hugging Face model (hf:Qwen/Qwen2.5-0.5B-Instruct from the hub cache, hf:DIR a "
    "save_pretrained directory)."
)


@dataclass(frozen=True)
class TrainConfig:
    """The flags every `kat train` objective takes; field names match the flags (`max_steps` ↔ `--max-steps`)."""

    LR_SCRATCH: ClassVar[float] = 1e-3
    LR_INIT: ClassVar[float] = 2e-5
    BATCH_FLAG: ClassVar[str] = "--batch-size"  # the flag that sets `batch_size` (GRPO: --prompts-per-step)
    # Flags added after runs were first recorded: left out of the record at their default, so the records (and
    # checkpoint metas) of runs that do not use them are byte-identical to before.
    RECORDED_UNLESS_DEFAULT: ClassVar[tuple[str, ...]] = ()

    name: str | None = flag(None, "Run name: <kind>_checkpoints/NAME/ (default: uniform or density).", panel=RUN,
                            metavar="NAME")
    density_aware: bool = flag(False, "Sample rare prompts more often, by their density weight.", panel=SAMPLING)
    weights: str | None = flag(None, "With --density-aware: sample by this weight set (`kat embed --name NAME`) "
                               "instead of the default one; held-out quintiles stay cut on the default set.",
                               panel=SAMPLING, metavar="NAME")
    pair_weighting: str | None = flag(None, "With --density-aware: per-prompt (default) gives each prompt its "
                                      "weight in total, shared by its pairs; per-pair gives every pair its "
                                      "prompt's weight.", panel=SAMPLING, choices=WEIGHTINGS)
    init: str | None = flag(None, _INIT_HELP, panel=MODEL, metavar="RUN|DIR|hf:NAME")
    depth: int | None = flag(None, f"Train a fresh GPT of this depth from scratch (default {DEFAULT_DEPTH} without "
                             "--init): a toy for trying the pipeline, not for real models.", panel=MODEL, metavar="N")
    max_steps: int = flag(1000, "Optimizer steps.", panel=OPTIM, metavar="N")
    batch_size: int = flag(32, "Pairs per step, over all processes.", panel=OPTIM, metavar="N")
    micro_batch_size: int | None = flag(None, "Pairs per forward pass per process; smaller than the per-process "
                                        "share means gradient accumulation.", panel=OPTIM, metavar="N")
    lr: float | None = flag(None, "Peak learning rate (default {LR_INIT} with --init, {LR_SCRATCH} from scratch).",
                            panel=OPTIM, metavar="LR")
    weight_decay: float = flag(0.0, "AdamW weight decay.", panel=OPTIM, metavar="W")
    warmup_steps: int | None = flag(None, "Linear warmup before cosine decay (default 5% of steps, at most 100).",
                                    panel=OPTIM, metavar="N")
    grad_clip: float = flag(1.0, "Gradient-norm clip (0: off).", panel=OPTIM, metavar="G")
    max_len: int = flag(512, "Tokens per sequence; longer ones keep the response and trim the prefix from the left.",
                        panel=MODEL, metavar="N")
    max_response_len: int | None = flag(None, "Cap on response tokens (default: --max-len / 2).", panel=MODEL,
                                        metavar="N")
    val_ratio: float = flag(0.05, "Share of prompts held out (by a seeded hash of the prefix id; the same prompts "
                            "for every objective with one --split-seed).", panel=SAMPLING, metavar="R")
    eval_every: int = flag(250, "Evaluate on the held-out set (pairs; GRPO: prompts) every N steps (0: only at the "
                           "end).", panel=RUN, metavar="N")
    save_every: int = flag(250, "Checkpoint every N steps (0: only at the end); only the latest is kept.", panel=RUN,
                           metavar="N")
    bucketing: bool = flag(True, "Do not group sequences of similar length into batches.", panel=SAMPLING,
                           name="--no-bucketing")
    resume: bool = flag(False, "Continue the latest checkpoint of this run exactly.", panel=RUN)
    seed: int = flag(0, "Seed of the sample stream, a fresh model's init and rollouts (the held-out split has "
                     "--split-seed).", panel=SAMPLING, metavar="N")
    split_seed: int = flag(0, "Seed of the held-out split: every run and replicate with one --split-seed and "
                           "--val-ratio holds out the same prompts.", panel=SAMPLING, metavar="N")
    seeds: str | None = flag(None, "Train one run per seed, NAME-s0, NAME-s1, … (0,1,2, or 3 for 0..2): replicates "
                             "of one arm. An --init (or --rm, --ref) naming an arm starts replicate i from its "
                             "replicate i; naming one run, every replicate from it.", panel=SAMPLING,
                             metavar="LIST|N")
    device: str = flag("auto", "Where to train.", panel=RUN, choices=DEVICES)
    dtype: str = flag("auto", "Compute precision (parameters stay fp32): auto is fp32 on the CPU and bf16 on CUDA "
                      "(fp16 with a gradient scaler on GPUs without native bf16); fp32 uses TF32 matmuls on CUDA. "
                      "Recorded when set.", panel=RUN, choices=DTYPES)
    threads: int | None = flag(None, "CPU threads for torch (default: torch's choice).", panel=RUN, metavar="N")
    force: bool = flag(False, "Use inputs that are modified or stale, or an --init model that trained on this run's "
                       "held-out prompts (recorded as forced in the manifest).", panel=UPSTREAM)
    # Hugging Face backbones (`--init hf:…`).
    chat_template: str | None = flag(None, "Jinja chat template for an hf: model whose tokenizer has none.",
                                     panel=MODEL, metavar="FILE")
    trust_remote_code: bool = flag(False, "Allow an hf: model that runs its own Python code (recorded).",
                                   panel=MODEL)
    gradient_checkpointing: bool = flag(False, "hf: models: recompute activations in the backward pass (less "
                                        "memory, more time).", panel=MODEL)
    # Shard over torchrun's ranks (FSDP2) instead of DDP; resumable with or without.
    fsdp: bool = flag(False, "Under torchrun: shard the model, gradients and optimizer state over the processes "
                      "(PyTorch FSDP2) instead of a full copy on each (DDP).", panel=RUN)
    # Experiment trackers (`katcli.train.tracking`): where the run is watched, not what it computes, so never in
    # params() (a tracked run and an untracked one are the same run; --resume may add or drop trackers). The flag
    # gives a list (repeated, comma-separated); __post_init__ turns it into the tuple of backend names.
    report_to: list[str] | None = flag(
        None, "Also log to experiment trackers: none (default), tensorboard, wandb, trackio, mlflow; repeat or "
        "comma-separate. Each is an extra (pip install 'katcli[wandb]'). Offline by default: they write under "
        "tracking/ (W&B follows WANDB_MODE).", panel=RUN, metavar="TRACKER")

    # LoRA adapters on a Hugging Face backbone (katcli.model.lora, through PEFT).
    lora_r: int = flag(0, "Train LoRA adapters of this rank instead of every weight (0: off); hf: backbones only. "
                       "DPO/GRPO's reference is then the same model with its adapters off.", panel=LORA, metavar="N")
    lora_alpha: float | None = flag(None, "LoRA scaling numerator: updates are scaled by A / r (default 2 × "
                                    "--lora-r).", panel=LORA, metavar="A")
    lora_dropout: float = flag(0.0, "Dropout on the adapters' input.", panel=LORA, metavar="P")
    lora_targets: str | None = flag(None, "Comma-separated module names to adapt (q_proj,v_proj), or all-linear "
                                    "(default: all-linear, every attention and MLP projection as PEFT resolves them).",
                                    panel=LORA, metavar="NAMES")

    def __post_init__(self) -> None:
        object.__setattr__(self, "report_to", parse_report_to(self.report_to))  # "a,b" and repeats → names
        self.validate()

    def validate(self) -> None:
        if self.name is not None and not _NAME_RE.match(self.name):
            raise ConfigError("--name must be letters, digits, '.', '_' or '-' (no slashes), starting alphanumeric")
        if self.init is not None and self.depth is not None:
            raise ConfigError("--init and --depth exclude each other: --init starts from a model, --depth from scratch")
        if self.depth is not None and self.depth < 1:
            raise ConfigError("--depth must be at least 1")
        if self.weights is not None:
            if not _NAME_RE.match(self.weights):
                raise ConfigError("--weights must be a weight set's name (letters, digits, '.', '_' or '-')")
            if not self.density_aware:
                raise ConfigError("--weights only applies with --density-aware")
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
        check_dtype(self.dtype)
        if self.dtype == "fp16" and self.fsdp:
            # fp16 needs a gradient scaler whose overflow check agrees over shards; kat's is DDP's (per rank).
            raise ConfigError("--dtype fp16 cannot be combined with --fsdp", hint="use --dtype bf16 or fp32 with --fsdp")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("--threads must be at least 1")
        if self.chat_template is not None and not os.path.isfile(self.chat_template):
            raise ConfigError(f"--chat-template {self.chat_template}: no such file")
        self._validate_lora()
        check_installed(self.report_to)

    def _validate_lora(self) -> None:
        if self.lora_r < 0:
            raise ConfigError("--lora-r must be 0 (off) or more", hint="e.g. --lora-r 16 (the adapters' rank)")
        if self.lora_r == 0:
            given = [f"--{f.replace('_', '-')}" for f in _LORA_FLAGS[1:]
                     if getattr(self, f) != type(self).__dataclass_fields__[f].default]
            if given:
                raise ConfigError(f"{', '.join(given)} only apply with --lora-r", hint="add --lora-r N (e.g. 16)")
            return
        if self.lora_alpha is not None and not self.lora_alpha > 0:
            raise ConfigError("--lora-alpha must be positive")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError("--lora-dropout must be in [0, 1)")
        if self.lora_targets is not None and not self.lora_target_names:
            raise ConfigError("--lora-targets needs at least one module name, or all-linear")
        if self.fsdp:
            raise ConfigError(
                "--fsdp with --lora-r is not supported: FSDP2 would shard the frozen base and the adapters alike",
                hint="drop --fsdp: under torchrun, DDP keeps one base copy per process and all-reduces the adapters "
                "only (or full fine-tune with --fsdp and no --lora-r)",
            )

    @property
    def lora_target_names(self) -> tuple[str, ...] | None:
        if self.lora_targets is None:
            return None
        return tuple(t.strip() for t in self.lora_targets.split(",") if t.strip())

    def lora_spec(self) -> Any:  # katcli.model.lora.LoraSpec, or None without --lora-r
        if self.lora_r == 0:
            return None
        from katcli.model.lora import LoraSpec

        return LoraSpec(self.lora_r, self.resolved_lora_alpha, self.lora_dropout, self.lora_target_names)

    @property
    def resolved_lora_alpha(self) -> float:
        return self.lora_alpha if self.lora_alpha is not None else 2.0 * self.lora_r

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
        """The recorded parameters: every flag that shapes the model (not --force / --resume / --seeds / --report-to)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("force", "resume", "seeds", "report_to")}
        out["name"] = self.run_name
        out["pair_weighting"] = self.weighting
        out["lr"] = self.resolved_lr
        out["max_response_len"] = self.resolved_max_response_len
        if self.split_seed == self.seed:  # recorded only when it differs, so runs where they agree keep their bytes
            del out["split_seed"]
        for key in _RECORDED_WHEN_SET:
            if not out[key]:
                del out[key]
        if self.dtype == "auto":
            del out["dtype"]
        defaults = {f.name: f.default for f in fields(self) if f.default is not MISSING}
        for key in self.RECORDED_UNLESS_DEFAULT:
            if out[key] == defaults[key]:
                del out[key]
        if self.lora_r == 0:
            for key in _LORA_FLAGS:
                del out[key]
        else:
            out["lora_alpha"] = self.resolved_lora_alpha
        if self.chat_template is not None:
            out["chat_template"] = os.path.abspath(self.chat_template)
        if self.init is None:
            out["depth"] = self.depth if self.depth is not None else DEFAULT_DEPTH
        return out


# ------------------------------------------------------------------------------------------------------ objectives


@dataclass(frozen=True)
class TrainRMConfig(TrainConfig):
    """`kat train rm`'s flags: the shared ones plus the reward-centering coefficient."""

    reward_centering: float = flag(0.0, "Weight of the (r_c + r_r)² term that keeps rewards centred on zero "
                                   "(0: off).", panel=OPTIM, metavar="C")

    def validate(self) -> None:
        super().validate()
        if self.reward_centering < 0:
            raise ConfigError("--reward-centering must be 0 (off) or more")


@dataclass(frozen=True)
class TrainSFTConfig(TrainConfig):
    """`kat train sft`'s flags: exactly the shared ones."""


@dataclass(frozen=True)
class TrainDPOConfig(TrainConfig):
    """`kat train dpo`'s flags: the shared ones plus the reference and the loss."""

    RECORDED_UNLESS_DEFAULT: ClassVar[tuple[str, ...]] = ("simpo_gamma",)

    init: str | None = flag(None, "The starting policy: an SFT run (sft_checkpoints/), an imported model (models/; "
                            "STAGE/NAME when several stages have the name) or a checkpoint directory (default: the "
                            "workspace's SFT run, when there is exactly one).", panel=MODEL, metavar="RUN|DIR")
    depth: int | None = flag(None, "A fresh GPT of this depth as both policy and reference: a toy for trying the "
                             "pipeline; DPO from a random model learns nothing useful.", panel=MODEL, metavar="N")
    ref: str | None = flag(None, "The frozen reference policy: a run, a directory or hf:NAME|DIR (a Hugging Face "
                           "causal LM with the policy's vocabulary) (default: the --init model). Its log-probs are "
                           "computed once and cached in the run directory.", panel=DPO, metavar="RUN|DIR|hf:NAME")
    beta: float = flag(0.1, "Strength of the pull toward the reference (the implicit reward is B·log π/π_ref).",
                       panel=DPO, metavar="B")
    loss: str = flag(L.SIGMOID, "sigmoid: DPO; ipo: squared loss on per-token log-ratios; hinge: SLiC; robust: "
                     "unbiased under label noise --label-smoothing; reference-free (no reference pass, no cache): "
                     "simpo: SimPO's length-normalised margin (B ≈ 2, with --simpo-gamma); orpo: NLL + B × ORPO's "
                     "odds-ratio term.", panel=DPO, choices=L.DPO_LOSSES)
    label_smoothing: float = flag(0.0, "Assumed share of flipped labels, below 0.5: conservative DPO with sigmoid, "
                                  "the noise rate with robust.", panel=DPO, metavar="E")
    sft_weight: float = flag(0.0, "Add A × the chosen reply's mean token NLL (RPO), so the chosen reply's "
                             "likelihood does not fall (0: off).", panel=DPO, metavar="A")
    simpo_gamma: float | None = flag(None, "SimPO's target margin γ (--loss simpo only; default 0.5, TRL's).",
                                     panel=DPO, metavar="G")

    def validate(self) -> None:
        super().validate()
        if self.loss_config().reference_free and self.ref is not None:
            raise ConfigError(
                f"--ref is not used by --loss {self.loss}: it is reference-free (no reference model, no cached "
                "reference log-probs)", hint="drop --ref, or choose a reference-based --loss such as sigmoid",
            )

    def loss_config(self) -> Any:  # katcli.train.dpo_losses.DPOLossConfig (imported here: it imports torch)
        from katcli.train.dpo_losses import DPOLossConfig

        return DPOLossConfig(
            beta=self.beta, loss=self.loss, label_smoothing=self.label_smoothing, sft_weight=self.sft_weight,
            simpo_gamma=self.simpo_gamma,
        )


@dataclass(frozen=True)
class TrainGRPOConfig(TrainConfig):
    """`kat train grpo`'s flags: the shared ones (`batch_size` is --prompts-per-step) plus rollout and loss flags."""

    LR_SCRATCH: ClassVar[float] = 1e-4
    LR_INIT: ClassVar[float] = 1e-6  # TRL's GRPO default: RL moves a pretrained policy in small steps
    BATCH_FLAG: ClassVar[str] = "--prompts-per-step"
    NO_FLAG: ClassVar[tuple[str, ...]] = ("pair_weighting", "max_response_len")  # GRPO weighs prompts, fits replies
    RECORDED_UNLESS_DEFAULT: ClassVar[tuple[str, ...]] = ("advantage",)

    batch_size: int = flag(16, "Prompts per optimizer step, over all processes.", panel=OPTIM, metavar="N",
                           name=BATCH_FLAG)
    micro_batch_size: int | None = flag(None, "Prompts (each with --group-size replies) per forward pass per "
                                        "process (default: the process's whole share).", panel=OPTIM, metavar="N")
    lr: float | None = flag(None, "Peak learning rate (default {LR_INIT} with --init, {LR_SCRATCH} from scratch; "
                            "{LR_INIT} is TRL's GRPO default).", panel=OPTIM, metavar="LR")
    rm: str | None = flag(None, "The frozen reward model that scores replies: a run of rm_checkpoints/, a checkpoint "
                          "directory, or hf:NAME|DIR (a Hugging Face sequence classifier with num_labels=1, as it "
                          "is) (required).", panel=MODEL, metavar="RUN|DIR|hf:NAME")
    ref: str | None = flag(None, "KL reference policy: a run, a directory or hf:NAME|DIR (a Hugging Face causal LM "
                           "with the policy's vocabulary) (default: the --init model, frozen; none with --beta 0).",
                           panel=MODEL, metavar="RUN|DIR|hf:NAME")
    group_size: int = flag(8, "Replies sampled per prompt.", panel=ROLLOUT, metavar="G")
    max_new_tokens: int = flag(128, "Reply length cap; a reply cut here counts as truncated.", panel=ROLLOUT,
                               metavar="N")
    temperature: float = flag(1.0, "Sampling temperature.", panel=ROLLOUT, metavar="T")
    top_k: int | None = flag(None, "Sample among the N likeliest tokens.", panel=ROLLOUT, metavar="N")
    top_p: float | None = flag(None, "Nucleus sampling mass.", panel=ROLLOUT, metavar="P")
    beta: float = flag(0.04, "Weight of the k3 KL penalty to the reference (0: off, no reference loaded).",
                       panel=GRPO_LOSS, metavar="B")
    epsilon: float = flag(0.2, "PPO clip: ratios kept in [1 − E, 1 + E].", panel=GRPO_LOSS, metavar="E")
    epsilon_high: float | None = flag(None, "Upper clip (DAPO's clip-higher; default --epsilon).", panel=GRPO_LOSS,
                                      metavar="E")
    num_iterations: int = flag(1, "Optimizer updates per rollout batch (1: fully on-policy).", panel=GRPO_LOSS,
                               metavar="N")
    scale_rewards: str = flag(L.SCALE_GROUP, "Divide advantages by the group's reward std, the batch's, or nothing "
                              "(Dr. GRPO); --advantage group only.", panel=GRPO_LOSS, choices=L.SCALE_REWARDS)
    advantage: str = flag(L.ADV_GROUP, "The baseline: group-relative (GRPO), leave-one-out over the group (RLOO), "
                          "or none, with the batch's rewards whitened over its reply tokens (REINFORCE++).",
                          panel=GRPO_LOSS, choices=L.ADVANTAGES)
    loss_type: str = flag(L.LOSS_DAPO, "Loss normalisation: per reply then per batch (grpo), by replies × "
                          "--max-new-tokens (dr_grpo), by reply tokens (dapo).", panel=GRPO_LOSS,
                          choices=L.LOSS_TYPES)
    eval_prompts: int = flag(64, "Held-out prompts evaluated (a fixed, seeded choice).", panel=ROLLOUT, metavar="N")
    eval_samples: int = flag(2, "Sampled replies per held-out prompt (besides the greedy one).", panel=ROLLOUT,
                             metavar="K")

    def validate(self) -> None:
        super().validate()
        if not self.rm:
            raise ConfigError(
                "--rm is required: GRPO needs a reward model to score its replies",
                hint="train one with `kat train rm` and pass its run name, e.g. --rm uniform",
            )
        self.grpo_config()
        self.sampling_config()
        if self.temperature == 0:
            raise ConfigError(
                "--temperature 0 samples the same reply --group-size times: every group has zero reward spread "
                "and nothing is learned",
                hint="sample with --temperature 1.0 (evaluation adds greedy replies by itself)",
            )
        if self.max_new_tokens + MIN_PROMPT > self.max_len:
            raise ConfigError(
                f"--max-new-tokens {self.max_new_tokens} leaves no room for the prompt in the model's context "
                f"(--max-len {self.max_len}, of which a prompt keeps at least {MIN_PROMPT} tokens)",
                hint=f"use --max-new-tokens {self.max_len - MIN_PROMPT} or less, or raise --max-len "
                "(up to what the model supports)",
            )
        if self.eval_prompts < 1:
            raise ConfigError("--eval-prompts must be at least 1")
        if self.eval_samples < 1:
            raise ConfigError("--eval-samples must be at least 1")

    def grpo_config(self) -> Any:
        from katcli.train.grpo_losses import GRPOConfig

        return GRPOConfig(
            group_size=self.group_size, scale_rewards=self.scale_rewards, loss_type=self.loss_type,
            epsilon=self.epsilon, epsilon_high=self.epsilon_high, beta=self.beta, num_iterations=self.num_iterations,
            advantage=self.advantage,
        )

    def sampling_config(self) -> Any:
        from katcli.model.engine import SamplingConfig

        return SamplingConfig(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
            num_samples=self.group_size, seed=self.seed,
        )


@dataclass(frozen=True)
class TrainKTOConfig(TrainConfig):
    """`kat train kto`'s flags: the shared ones plus the reference and KTO's β and class weights (TRL's defaults)."""

    init: str | None = flag(None, TrainDPOConfig.__dataclass_fields__["init"].metadata["help"], panel=MODEL,
                            metavar="RUN|DIR")
    ref: str | None = flag(None, "The frozen reference policy (default: the --init model). Its log-probs are "
                           "computed once and cached in the run directory, as DPO's.", panel=KTO,
                           metavar="RUN|DIR|hf:NAME")
    beta: float = flag(0.1, "Scale of the implicit reward B·log π/π_ref inside KTO's sigmoid value function.",
                       panel=KTO, metavar="B")
    desirable_weight: float = flag(1.0, "λ_D: the weight of the chosen (desirable) replies' losses.", panel=KTO,
                                   metavar="W")
    undesirable_weight: float = flag(1.0, "λ_U: the weight of the rejected (undesirable) replies' losses.",
                                     panel=KTO, metavar="W")

    def validate(self) -> None:
        super().validate()
        self.loss_config()

    def loss_config(self) -> Any:  # katcli.train.kto_losses.KTOLossConfig (imported here: it imports torch)
        from katcli.train.kto_losses import KTOLossConfig

        return KTOLossConfig(beta=self.beta, desirable_weight=self.desirable_weight,
                             undesirable_weight=self.undesirable_weight)


@dataclass(frozen=True)
class TrainPPOConfig(TrainConfig):
    """`kat train ppo`'s flags: the shared ones (`batch_size` is --prompts-per-step), GRPO's rollout flags, and
    PPO's, with TRL's PPOConfig defaults."""

    LR_SCRATCH: ClassVar[float] = 1e-4
    LR_INIT: ClassVar[float] = 3e-6  # TRL's PPOConfig learning_rate
    BATCH_FLAG: ClassVar[str] = "--prompts-per-step"
    NO_FLAG: ClassVar[tuple[str, ...]] = ("pair_weighting", "max_response_len", "chat_template", "trust_remote_code",
                                          "gradient_checkpointing", "fsdp")  # a kat GPT policy, under DDP

    batch_size: int = flag(16, "Prompts per optimizer step (one reply each), over all processes.", panel=OPTIM,
                           metavar="N", name=BATCH_FLAG)
    micro_batch_size: int | None = flag(None, "Prompts per forward pass per process (default: the process's whole "
                                        "share).", panel=OPTIM, metavar="N")
    lr: float | None = flag(None, "Peak learning rate of the policy and the critic (default {LR_INIT} with --init, "
                            "TRL's; {LR_SCRATCH} from scratch).", panel=OPTIM, metavar="LR")
    rm: str | None = flag(None, "The frozen reward model that scores replies (a run of rm_checkpoints/, a "
                          "directory or hf:NAME|DIR) (required); the critic starts from it when it reads the "
                          "policy's tokens.", panel=MODEL, metavar="RUN|DIR|hf:NAME")
    ref: str | None = flag(None, "KL reference policy (default: the --init model, frozen; none with --kl-coef 0).",
                           panel=MODEL, metavar="RUN|DIR|hf:NAME")
    max_new_tokens: int = flag(128, "Reply length cap; a reply cut here counts as truncated.", panel=ROLLOUT,
                               metavar="N")
    temperature: float = flag(1.0, "Sampling temperature.", panel=ROLLOUT, metavar="T")
    top_k: int | None = flag(None, "Sample among the N likeliest tokens.", panel=ROLLOUT, metavar="N")
    top_p: float | None = flag(None, "Nucleus sampling mass.", panel=ROLLOUT, metavar="P")
    kl_coef: float = flag(0.05, "Per-token KL penalty in the reward: r_t = −B·kl_t (+ the score on the last token); "
                          "0: no reference loaded.", panel=PPO, metavar="B")
    kl_estimator: str = flag(L.KL_K1, "KL estimate per sampled token: k1 = log π − log π_ref (TRL's default) or k3.",
                             panel=PPO, choices=L.KL_ESTIMATORS)
    gamma: float = flag(1.0, "Discount factor of GAE.", panel=PPO, metavar="G")
    lam: float = flag(0.95, "GAE's λ (1: Monte Carlo returns, 0: one-step TD).", panel=PPO, metavar="L")
    cliprange: float = flag(0.2, "Policy ratio clip: [1 − E, 1 + E].", panel=PPO, metavar="E")
    cliprange_value: float = flag(0.2, "Value clip around the rollout's values.", panel=PPO, metavar="E")
    vf_coef: float = flag(0.1, "Weight of the value loss in the update's loss.", panel=PPO, metavar="C")
    ppo_epochs: int = flag(4, "Passes over each rollout batch.", panel=PPO, metavar="N")
    num_minibatches: int = flag(1, "Updates per pass, each on 1/M of the batch (a seeded shuffle per pass).",
                                panel=PPO, metavar="M")
    eval_prompts: int = flag(64, "Held-out prompts evaluated (a fixed, seeded choice).", panel=ROLLOUT, metavar="N")
    eval_samples: int = flag(2, "Sampled replies per held-out prompt (besides the greedy one).", panel=ROLLOUT,
                             metavar="K")

    def validate(self) -> None:
        super().validate()
        if not self.rm:
            raise ConfigError(
                "--rm is required: PPO needs a reward model to score its replies",
                hint="train one with `kat train rm` and pass its run name, e.g. --rm uniform",
            )
        if self.fsdp:
            raise ConfigError("--fsdp is not supported by kat train ppo yet", hint="run it with DDP (drop --fsdp)")
        self.ppo_config()
        self.sampling_config()
        if self.max_new_tokens + MIN_PROMPT > self.max_len:
            raise ConfigError(
                f"--max-new-tokens {self.max_new_tokens} leaves no room for the prompt in the model's context "
                f"(--max-len {self.max_len}, of which a prompt keeps at least {MIN_PROMPT} tokens)",
                hint=f"use --max-new-tokens {self.max_len - MIN_PROMPT} or less, or raise --max-len",
            )
        if self.eval_prompts < 1 or self.eval_samples < 1:
            raise ConfigError("--eval-prompts and --eval-samples must be at least 1")

    def ppo_config(self) -> Any:
        from katcli.train.ppo_losses import PPOConfig

        return PPOConfig(
            kl_coef=self.kl_coef, kl_estimator=self.kl_estimator, gamma=self.gamma, lam=self.lam,
            cliprange=self.cliprange, cliprange_value=self.cliprange_value, vf_coef=self.vf_coef,
            ppo_epochs=self.ppo_epochs, num_minibatches=self.num_minibatches,
        )

    def sampling_config(self) -> Any:
        from katcli.model.engine import SamplingConfig

        return SamplingConfig(max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_k=self.top_k,
                              top_p=self.top_p, num_samples=1, seed=self.seed)


#: The sizes of a run that trains in well under a minute on 2 CPU cores (smoke tests, `tiny`).
TINY: dict[str, Any] = dict(
    max_steps=40, batch_size=16, max_len=256, val_ratio=0.2, eval_every=0, save_every=0, device="cpu", threads=1,
)


def tiny(config: type[Any], own: dict[str, Any], overrides: dict[str, Any]) -> Any:
    """A `config` of the `TINY` sizes, with a stage's `own` settings, then the caller's `overrides`, on top."""
    return config(**{**TINY, **own, **overrides})
