"""The variants the DPO and GRPO losses dispatch on, by name: the registry `--loss`, `--loss-type` and
`--scale-rewards` choose from. Torch-free, so configs and `kat --help` can list the names without loading the losses.
"""

from __future__ import annotations

# DPO (`katcli.train.dpo_losses`): sigmoid is DPO itself, ipo / hinge / robust its TRL-named variants.
SIGMOID, IPO, HINGE, ROBUST = "sigmoid", "ipo", "hinge", "robust"
DPO_LOSSES = (SIGMOID, IPO, HINGE, ROBUST)
SMOOTHABLE = (SIGMOID, ROBUST)  # the losses --label-smoothing applies to

# GRPO (`katcli.train.grpo_losses`): how advantages are scaled and how the loss is normalised.
SCALE_GROUP, SCALE_BATCH, SCALE_NONE = "group", "batch", "none"
SCALE_REWARDS = (SCALE_GROUP, SCALE_BATCH, SCALE_NONE)
LOSS_GRPO, LOSS_DR_GRPO, LOSS_DAPO = "grpo", "dr_grpo", "dapo"
LOSS_TYPES = (LOSS_GRPO, LOSS_DR_GRPO, LOSS_DAPO)
