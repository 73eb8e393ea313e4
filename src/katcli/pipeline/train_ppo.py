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
from typing import Any

from katcli.errors import ConfigError
from katcli.model.run_meta import POLICY_KIND
from katcli.pipeline.train_config import TrainPPOConfig
from katcli.pipeline.train_grpo import _load_ref, _load_rm, policy_evaluator, rollout_prompts
from katcli.pipeline.training import Built, Prepared, StepCallback, TrainingStage, TrainResult, run_training
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P

STAGE = "ppo"


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
    if not isinstance(prep.model, GPT):
        raise ConfigError("kat train ppo needs a kat GPT policy: a Hugging Face --init has no critic here yet",
                          hint="start from an SFT run of kat's GPT")
    return RewardModel(copy.deepcopy(prep.model)).to(prep.dist.device), "policy"


def _build(prep: Prepared) -> Built:
    import numpy as np

    from katcli.train.objectives.ppo import PPOObjective
    from katcli.train.rm_scoring import RewardScorer

    cfg: TrainPPOConfig = prep.cfg
    rm, rm_info = _load_rm(prep)
    ref, ref_info = _load_ref(prep, cfg.kl_coef, "--kl-coef")
    critic, critic_from = _critic(prep, rm.model, rm.tokenizer)
    scorer = RewardScorer.from_meta(rm.model, rm.tokenizer, rm.meta, batch_size=max(prep.micro_batch_size, 8))
    rp = rollout_prompts(prep, cfg)
    objective = PPOObjective(
        prep.model, critic, prep.tokenizer, prompts=[prep.pairs[i].messages for i in rp.train_rows],
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


PPO_STAGE = TrainingStage(stage=STAGE, run_root=P.PPO_DIR, kind=POLICY_KIND, build=_build, what="policies")


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
