"""The flags every `kat train …` objective shares, declared once so their names, help and panels never drift.

A training command lists these aliases as its parameters (`max_steps: MaxSteps = 1000`) and adds only its own
flags; `common_config_kwargs` turns them into the shared fields of `katcli.pipeline.training.TrainConfig`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

MODEL = "Model"
SAMPLING = "Sampling & held-out set"
OPTIM = "Optimisation"
RUN = "Run"

Name = Annotated[
    str | None,
    typer.Option("--name", metavar="NAME", help="Run name: <kind>_checkpoints/NAME/ (default: uniform or density).",
                 rich_help_panel=RUN, show_default=False),
]
Init = Annotated[
    str | None,
    typer.Option("--init", metavar="RUN|DIR|hf:NAME", help="Start from this model: a run name (models/, "
                 "sft_checkpoints/, …; STAGE/NAME when several stages have it), a checkpoint directory, or a Hugging "
                 "Face model (hf:Qwen/Qwen2.5-0.5B-Instruct from the hub cache, hf:DIR a save_pretrained directory).",
                 rich_help_panel=MODEL, show_default=False),
]
ChatTemplate = Annotated[
    str | None,
    typer.Option("--chat-template", metavar="FILE", help="Jinja chat template for an hf: model whose tokenizer has "
                 "none.", rich_help_panel=MODEL, show_default=False),
]
TrustRemoteCode = Annotated[
    bool, typer.Option("--trust-remote-code", help="Allow an hf: model that runs its own Python code (recorded).",
                       rich_help_panel=MODEL),
]
GradientCheckpointing = Annotated[
    bool, typer.Option("--gradient-checkpointing", help="hf: models: recompute activations in the backward pass "
                       "(less memory, more time).", rich_help_panel=MODEL),
]
Depth = Annotated[
    int | None,
    typer.Option("--depth", metavar="N", help="Train a fresh GPT of this depth from scratch (default 4 without "
                 "--init): a toy for trying the pipeline, not for real models.", rich_help_panel=MODEL,
                 show_default=False),
]
MaxLen = Annotated[
    int, typer.Option("--max-len", metavar="N", help="Tokens per sequence; longer ones keep the response and trim "
                      "the prefix from the left.", rich_help_panel=MODEL),
]
MaxResponseLen = Annotated[
    int | None,
    typer.Option("--max-response-len", metavar="N", help="Cap on response tokens (default: --max-len / 2).",
                 rich_help_panel=MODEL, show_default=False),
]
DensityAware = Annotated[
    bool, typer.Option("--density-aware", help="Sample rare prompts more often, by their density weight.",
                       rich_help_panel=SAMPLING),
]
PairWeighting = Annotated[
    str | None,
    typer.Option("--pair-weighting", metavar="per-prompt|per-pair", help="With --density-aware: per-prompt "
                 "(default) gives each prompt its weight in total, shared by its pairs; per-pair gives every "
                 "pair its prompt's weight.", rich_help_panel=SAMPLING, show_default=False),
]
ValRatio = Annotated[
    float, typer.Option("--val-ratio", metavar="R", help="Share of prompts held out (by a seeded hash of the "
                        "prefix id; the same prompts for every objective with one --seed).", rich_help_panel=SAMPLING),
]
Seed = Annotated[
    int, typer.Option("--seed", metavar="N", help="Seed of the held-out split, the sample stream and a fresh "
                      "model's init.", rich_help_panel=SAMPLING),
]
NoBucketing = Annotated[
    bool, typer.Option("--no-bucketing", help="Do not group sequences of similar length into batches.",
                       rich_help_panel=SAMPLING),
]
MaxSteps = Annotated[int, typer.Option("--max-steps", metavar="N", help="Optimizer steps.", rich_help_panel=OPTIM)]
BatchSize = Annotated[
    int, typer.Option("--batch-size", metavar="N", help="Pairs per step, over all processes.", rich_help_panel=OPTIM)
]
MicroBatchSize = Annotated[
    int | None,
    typer.Option("--micro-batch-size", metavar="N", help="Pairs per forward pass per process; smaller than the "
                 "per-process share means gradient accumulation.", rich_help_panel=OPTIM, show_default=False),
]
LR = Annotated[
    float | None,
    typer.Option("--lr", metavar="LR", help="Peak learning rate (default 2e-5 with --init, 1e-3 from scratch).",
                 rich_help_panel=OPTIM, show_default=False),
]
WarmupSteps = Annotated[
    int | None,
    typer.Option("--warmup-steps", metavar="N", help="Linear warmup before cosine decay (default 5% of steps, "
                 "at most 100).", rich_help_panel=OPTIM, show_default=False),
]
WeightDecay = Annotated[float, typer.Option("--weight-decay", metavar="W", help="AdamW weight decay.",
                                            rich_help_panel=OPTIM)]
GradClip = Annotated[float, typer.Option("--grad-clip", metavar="G", help="Gradient-norm clip (0: off).",
                                         rich_help_panel=OPTIM)]
EvalEvery = Annotated[int, typer.Option("--eval-every", metavar="N", help="Evaluate on the held-out set (pairs; "
                                        "GRPO: prompts) every N steps (0: only at the end).", rich_help_panel=RUN)]
SaveEvery = Annotated[int, typer.Option("--save-every", metavar="N", help="Checkpoint every N steps (0: only "
                                        "at the end); only the latest is kept.", rich_help_panel=RUN)]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the latest checkpoint of this run exactly.",
                                      rich_help_panel=RUN)]
Device = Annotated[str, typer.Option("--device", metavar="auto|cpu|cuda", help="Where to train.", rich_help_panel=RUN)]
Dtype = Annotated[
    str, typer.Option("--dtype", metavar="auto|bf16|fp16|fp32", help="Compute precision (parameters stay fp32): "
                      "auto is fp32 on the CPU and bf16 on CUDA (fp16 with a gradient scaler on GPUs without native "
                      "bf16); fp32 uses TF32 matmuls on CUDA. Recorded when set.", rich_help_panel=RUN),
]
Force = Annotated[
    bool, typer.Option("--force", help="Use inputs that are modified or stale, or an --init model that trained on "
                       "this run's held-out prompts (recorded as forced in the manifest).", rich_help_panel="Upstream"),
]
Fsdp = Annotated[
    bool, typer.Option("--fsdp", help="Under torchrun: shard the model, gradients and optimizer state over the "
                       "processes (PyTorch FSDP2) instead of a full copy on each (DDP).", rich_help_panel=RUN),
]
Threads = Annotated[
    int | None,
    typer.Option("--threads", metavar="N", help="CPU threads for torch (default: torch's choice).",
                 rich_help_panel=RUN, show_default=False),
]

_COMMON = (
    "name", "density_aware", "pair_weighting", "init", "depth", "max_steps", "batch_size", "micro_batch_size", "lr",
    "weight_decay", "warmup_steps", "grad_clip", "max_len", "max_response_len", "val_ratio", "eval_every",
    "save_every", "resume", "seed", "device", "dtype", "threads", "force", "chat_template", "trust_remote_code",
    "gradient_checkpointing", "fsdp",
)


def common_config_kwargs(values: dict[str, Any]) -> dict[str, Any]:
    """The shared `TrainConfig` fields from a command's parameters (`locals()`); `--no-bucketing` inverted."""
    out = {k: values[k] for k in _COMMON}
    out["bucketing"] = not values["no_bucketing"]
    return out
