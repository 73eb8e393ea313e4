"""The variants the DPO, GRPO and PPO losses dispatch on, by name: the registry `--loss`, `--loss-type`,
`--scale-rewards`, `--advantage` and `--kl-estimator` choose from. Torch-free, so configs and `kat --help` can list the names without loading the losses.
"""

from __future__ import annotations

# DPO (`katcli.train.dpo_losses`): sigmoid is DPO itself, ipo / hinge / robust its TRL-named variants.
# simpo / orpo are reference-free (SimPO, ORPO: no reference model, no cached reference log-probs).
SIGMOID, IPO, HINGE, ROBUST, SIMPO, ORPO = "sigmoid", "ipo", "hinge", "robust", "simpo", "orpo"
DPO_LOSSES = (SIGMOID, IPO, HINGE, ROBUST, SIMPO, ORPO)
SMOOTHABLE = (SIGMOID, ROBUST)  # the losses --label-smoothing applies to
REFERENCE_FREE = (SIMPO, ORPO)

# GRPO (`katcli.train.grpo_losses`): how advantages are scaled and how the loss is normalised.
SCALE_GROUP, SCALE_BATCH, SCALE_NONE = "group", "batch", "none"
SCALE_REWARDS = (SCALE_GROUP, SCALE_BATCH, SCALE_NONE)
LOSS_GRPO, LOSS_DR_GRPO, LOSS_DAPO = "grpo", "dr_grpo", "dapo"
LOSS_TYPES = (LOSS_GRPO, LOSS_DR_GRPO, LOSS_DAPO)
# GRPO's baseline (`--advantage`): group-relative, RLOO's leave-one-out, REINFORCE++'s global whitening.
ADV_GROUP, ADV_RLOO, ADV_REINFORCE_PP = "group", "rloo", "reinforce++"
ADVANTAGES = (ADV_GROUP, ADV_RLOO, ADV_REINFORCE_PP)

# PPO (`katcli.train.ppo_losses`): the per-token KL estimator of its KL-in-reward penalty.
KL_K1, KL_K3 = "k1", "k3"
KL_ESTIMATORS = (KL_K1, KL_K3)
