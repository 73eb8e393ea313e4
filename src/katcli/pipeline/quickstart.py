"""The quickstart plan: the whole experiment on the built-in sample, as the kat commands a user would type.

`kat quickstart` runs these steps one after another through the same CLI, so each step checks its inputs,
shows its progress, records itself in the manifest and prints its summary exactly as if typed by hand, and the
user can re-run or vary any single step. The sizes are chosen so the whole plan finishes in a few minutes on
2 CPU cores; they make a smoke test of the experiment, not a result (real runs start from a pretrained model).
This module builds the plan and says whether a workspace may take it; it runs nothing and knows nothing about
Typer.
"""

from __future__ import annotations

from dataclasses import dataclass

from katcli.errors import ConfigError, KatError
from katcli.pipeline import registry
from katcli.train.tracking import check_installed, parse_report_to
from katcli.workspace import Manifest, Workspace
from katcli.workspace import paths as P


@dataclass(frozen=True)
class QuickstartConfig:
    seed: int = 0
    rm_steps: int = 60  # optimizer steps for each tiny reward model
    policy_steps: int = 60  # optimizer steps for each tiny policy (SFT, and the policy objectives built on it)
    vocab_size: int = 2048
    threads: int = 1  # one thread per step: on 2 shared cores torch's default oversubscribes and runs slower
    seeds: int = 1  # training seeds per arm: N > 1 trains NAME-s<seed> replicates (seeds seed … seed + N − 1)
    report_to: tuple[str, ...] = ()  # every training step's --report-to (checked before the first step runs)

    def __post_init__(self) -> None:
        object.__setattr__(self, "report_to", parse_report_to(self.report_to))
        check_installed(self.report_to)
        if self.rm_steps < 1:
            raise ConfigError(f"--rm-steps must be at least 1, got {self.rm_steps}")
        if self.policy_steps < 1:
            raise ConfigError(f"--policy-steps must be at least 1, got {self.policy_steps}")
        if self.vocab_size < 256 + 9:
            raise ConfigError(f"--vocab-size must be at least 265 (256 bytes + 9 special tokens), got {self.vocab_size}")
        if self.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {self.threads}")
        if self.seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {self.seeds}")


def check_workspace(ws: Workspace) -> None:
    """Refuse a workspace that holds an experiment: the plan's first step replaces its pairs with the sample's and
    the next ones retrain over its runs. An empty workspace, or one whose pairs came from the sample (the demo
    workspace of an earlier quickstart), is fine."""
    manifest = Manifest.load(ws.manifest_path)
    if not manifest.runs:
        return
    pairs = manifest.runs.get("pairs")
    if pairs is not None and pairs.params.get("from") == "sample":
        return
    what = (f"its {P.PAIRS} is from `{registry.shown_command(pairs.command)}`, not the built-in sample" if pairs is not None
            else f"it records {', '.join(sorted(manifest.runs))}")
    raise KatError(
        f"{ws.root} already holds an experiment ({what}): quickstart would replace it and retrain over its runs",
        hint="run it in a new directory, e.g. `kat quickstart --workspace ./kat-demo`",
    )


@dataclass(frozen=True)
class Step:
    title: str
    argv: tuple[str, ...]  # arguments after `kat [global options]`


def quickstart_plan(cfg: QuickstartConfig) -> list[Step]:
    seed, threads = str(cfg.seed), str(cfg.threads)
    # The split stays with --seed as it always has (the default plan is today's commands, so the same bytes);
    # replicates of one arm (--seeds N) share it and differ in their training seed only.
    seeding = (("--split-seed", seed) if cfg.seed != 0 else ()) + (
        ("--seed", seed) if cfg.seeds == 1
        else ("--seeds", ",".join(str(cfg.seed + k) for k in range(cfg.seeds))))
    tracked = ("--report-to", ",".join(cfg.report_to)) if cfg.report_to else ()
    tiny = (
        "--depth", "1", "--batch-size", "16", "--max-len", "256", "--lr", "2e-3", "--val-ratio", "0.2",
        "--eval-every", "0", "--save-every", "0", "--device", "cpu", "--threads", threads, *seeding, *tracked,
    )
    tiny_rm = ("--max-steps", str(cfg.rm_steps), *tiny)
    tiny_policy = ("--max-steps", str(cfg.policy_steps), *tiny)
    # DPO starts from the uniform SFT policy, which is also its reference: the density-aware run reuses the
    # reference log-probs the uniform run cached.
    tiny_dpo = (
        "--init", "sft/uniform", "--max-steps", str(max(1, cfg.policy_steps // 2)), "--batch-size", "16",
        "--max-len", "256", "--lr", "1e-3", "--beta", "0.1", "--val-ratio", "0.2", "--eval-every", "0",
        "--save-every", "0", "--device", "cpu", "--threads", threads, *seeding, *tracked,
    )
    # GRPO: 8 prompts × 4 replies of at most 24 tokens per step; the policy learns from its own samples.
    tiny_grpo = (
        "--max-steps", str(max(1, cfg.policy_steps // 3)), "--prompts-per-step", "8", "--group-size", "4",
        "--max-new-tokens", "24", "--max-len", "256", "--lr", "1e-3", "--beta", "0.04", "--val-ratio", "0.2",
        "--eval-every", "0", "--save-every", "0", "--eval-prompts", "16", "--device", "cpu", "--threads", threads,
        *seeding, *tracked,
    )
    # PPO: 16 prompts × 1 reply per step, a critic copied from the uniform reward model, 2 epochs × 2 minibatches.
    tiny_ppo = (
        "--max-steps", str(max(1, cfg.policy_steps // 3)), "--prompts-per-step", "16", "--max-new-tokens", "24",
        "--max-len", "256", "--lr", "1e-3", "--kl-coef", "0.05", "--ppo-epochs", "2", "--num-minibatches", "2",
        "--val-ratio", "0.2", "--eval-every", "0", "--save-every", "0", "--eval-prompts", "16", "--device", "cpu",
        "--threads", threads, "--seed", seed,
    )
    return [
        Step("Preference pairs from the built-in sample", ("pairs", "download", "--from", "sample", "--seed", seed)),
        Step("Unique prompts", ("prefixes",)),
        Step("Embeddings and density weights", ("embed", "--device", "cpu")),
        Step("Tokenizer", ("train", "tokenizer", "--vocab-size", str(cfg.vocab_size))),
        Step("Reward model, uniform sampling", ("train", "rm", "--name", "uniform", *tiny_rm)),
        Step("Reward model, density-aware sampling",
             ("train", "rm", "--name", "density", "--density-aware", *tiny_rm)),
        Step("Starting policy: SFT on the chosen replies, uniform sampling",
             ("train", "sft", "--name", "uniform", *tiny_policy)),
        Step("SFT, density-aware sampling", ("train", "sft", "--name", "density", "--density-aware", *tiny_policy)),
        Step("DPO from the uniform SFT policy, uniform sampling", ("train", "dpo", "--name", "uniform", *tiny_dpo)),
        Step("DPO, density-aware sampling", ("train", "dpo", "--name", "density", "--density-aware", *tiny_dpo)),
        Step("GRPO against the uniform reward model, uniform prompt sampling",
             ("train", "grpo", "--name", "uniform", "--rm", "uniform", "--init", "sft/uniform", *tiny_grpo)),
        Step("GRPO, density-aware prompt sampling",
             ("train", "grpo", "--name", "density", "--density-aware", "--rm", "uniform", "--init", "sft/uniform",
              *tiny_grpo)),
        Step("PPO against the uniform reward model, uniform prompt sampling",
             ("train", "ppo", "--name", "uniform", "--rm", "uniform", "--init", "sft/uniform", *tiny_ppo)),
        Step("PPO, density-aware prompt sampling",
             ("train", "ppo", "--name", "density", "--density-aware", "--rm", "uniform", "--init", "sft/uniform",
              *tiny_ppo)),
        Step("Reward models and DPO policies (implicit rewards) on the same held-out pairs",
             ("eval", "rm", "uniform", "density", "dpo/uniform", "dpo/density", "--device", "cpu",
              "--threads", threads)),
        Step("Policies on the same held-out prompts: reward under the density RM, and diversity",
             ("eval", "policy", "sft/uniform", "dpo/uniform", "dpo/density", "grpo/uniform", "grpo/density",
              "ppo/uniform", "ppo/density", "--rm", "density", "--prompts", "20", "--samples", "2", "--max-new-tokens", "32", "--seed", seed,
              "--device", "cpu", "--threads", threads)),
        Step("The prompt space in 3D", ("viz",)),
        Step("The report: every figure and its numbers", ("report", "--device", "cpu", "--threads", threads)),
        Step("Workspace status", ("status",)),
    ]
