"""The `ppo` stage: PPO against a frozen reward model, uniform or density-aware, into `ppo_checkpoints/`.

The prompts, the reward model `--rm`, the reference (`--ref` or the starting model, frozen; none with
`--kl-coef 0`), the held-out evaluation and the prompt fitting are GRPO's (`katcli.pipeline.train_grpo`); the
objective is `katcli.train.objectives.ppo`: one reply per prompt, a separate critic, the KL penalty in the reward,
GAE, whitened advantages and `--ppo-epochs` × `--num-minibatches` clipped updates per step. The critic starts
from the reward model when it is a kat reward model on the policy's tokenizer (TRL's and OpenRLHF's default),
else from the starting policy with a zero value head; the meta says which. The result is a plain GPT checkpoint
(kind `kat-policy`); the critic travels in the optimizer files, for `--resume`. This module knows nothing about
Typer or Rich.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

from katcli.errors import ConfigError
from katcli.pipeline.train_config import TrainConfig
from katcli.pipeline.train_grpo import MIN_PROMPT, _load_ref, _load_rm, policy_evaluator, rollout_prompts
from katcli.pipeline.training import Built, Prepared, StepCallback, TrainingStage, TrainResult, run_training
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P

STAGE = "ppo"


@dataclass(frozen=True)
class TrainPPOConfig(TrainConfig):
    """`kat train ppo`'s flags: the shared ones (`batch_size` is --prompts-per-step), rollout flags as GRPO's, and
    PPO's, with TRL's PPOConfig defaults."""

    LR_SCRATCH: ClassVar[float] = 1e-4
    LR_INIT: ClassVar[float] = 3e-6  # TRL's PPOConfig learning_rate
    BATCH_FLAG: ClassVar[str] = "--prompts-per-step"

    rm: str | None = None
    ref: str | None = None
    batch_size: int = 16
    max_new_tokens: int = 128
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    kl_coef: float = 0.05
    kl_estimator: str = "k1"
    gamma: float = 1.0
    lam: float = 0.95
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    ppo_epochs: int = 4
    num_minibatches: int = 1
    eval_prompts: int = 64
    eval_samples: int = 2

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


def tiny_ppo_config(**overrides: Any) -> TrainPPOConfig:
    """A configuration that trains in seconds on 2 CPU cores from a tiny SFT policy (smoke tests)."""
    base: dict[str, Any] = dict(
        rm="uniform", init="sft/uniform", max_steps=20, batch_size=32, max_new_tokens=10, max_len=64, lr=3e-3,
        warmup_steps=0, kl_coef=0.0, val_ratio=0.2, eval_every=0, save_every=0, eval_prompts=32, ppo_epochs=2,
        num_minibatches=2, vf_coef=0.5, device="cpu", threads=1,
    )
    base.update(overrides)
    return TrainPPOConfig(**base)


def _critic(prep: Prepared, rm: Any, rm_tok: Any) -> tuple[Any, str]:
    """A trainable critic: a copy of the reward model when it reads the policy's tokens, else the policy's trunk."""
    from katcli.model.gpt import GPT
    from katcli.train.reward_model import RewardModel

    if isinstance(rm, RewardModel) and rm_tok.sha256() == prep.tokenizer.sha256():
        return copy.deepcopy(rm).to(prep.dist.device).train(), "reward_model"
    if not isinstance(prep.gpt, GPT):
        raise ConfigError("kat train ppo needs a kat GPT policy: a Hugging Face --init has no critic here yet",
                          hint="start from an SFT run of kat's GPT")
    return RewardModel(copy.deepcopy(prep.gpt)).to(prep.dist.device), "policy"


def _build(prep: Prepared) -> Built:
    import numpy as np

    from katcli.train.objectives.ppo import PPOObjective
    from katcli.train.rm_scoring import RewardScorer

    cfg: TrainPPOConfig = prep.cfg
    rm, rm_tok, rm_info, rm_meta = _load_rm(prep)
    ref, ref_info = _load_ref(prep, cfg.kl_coef, "--kl-coef")
    critic, critic_from = _critic(prep, rm, rm_tok)
    scorer = RewardScorer.from_meta(rm, rm_tok, rm_meta, batch_size=max(prep.micro_batch_size, 8))
    rp = rollout_prompts(prep, cfg)
    objective = PPOObjective(
        prep.gpt, critic, prep.tokenizer, prompts=[prep.pairs[i].messages for i in rp.train_rows],
        prompt_tokens=[rp.tokens[i] for i in rp.train_rows], prompt_ids=rp.item_pids, scorer=scorer,
        config=cfg.ppo_config(), sampling=cfg.sampling_config(), seed=cfg.seed, ref=ref, quintiles=rp.quintiles,
        evaluator=policy_evaluator(prep, cfg, scorer, rp), dist=prep.dist, progress=prep.progress,
    )
    lengths = np.asarray([len(rp.tokens[i]) for i in rp.train_rows], dtype=np.int64)
    meta = {
        "objective": "ppo",
        "reward_model": rm_info,
        "reference": ref_info,
        "critic": {"initialised_from": critic_from},
        "rollout": {"train_prompts": len(rp.train_rows), "eval_prompts": len(rp.held_rows),
                    "prompts_trimmed": rp.trimmed},
    }
    return Built(objective, lengths, meta=meta, stats={"reward_model": rm_info["name"]},
                 item_prefix_ids=rp.item_pids, item_noun="prompts")


PPO_STAGE = TrainingStage(stage=STAGE, run_root=P.PPO_DIR, kind="kat-policy", build=_build, what="policies")


def run_train_ppo(
    ws: Workspace,
    cfg: TrainPPOConfig,
    *,
    progress: ProgressFn = no_progress,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train (or resume) one PPO policy and record it as `ppo/<name>`; works alone or under torchrun."""
    from katcli.pipeline.runs import default_policy_init

    return run_training(ws, default_policy_init(ws, cfg), PPO_STAGE, progress=progress, on_step=on_step)
