"""Numerical parity of kat's new losses and advantages with TRL's, on identical inputs (issue 27).

Runs in the bench environment only (TRL is never a kat dependency):

    python3 -m venv /work/bench-trl
    /work/bench-trl/bin/pip install -c constraints.txt trl==0.29.1 -e .
    /work/bench-trl/bin/python bench/parity_trl.py [--seed 0] [--n 64]

TRL 0.29.1 is the last release with `PPOTrainer` (`trl.experimental.ppo`; TRL 1.x removed it); the same release
holds CPO (SimPO), ORPO, KTO (`trl.experimental.*`) and RLOO (`trl.RLOOTrainer`). What is compared, from random
log-probs, rewards, values and masks fed to both sides:

- SimPO: `CPOTrainer.cpo_loss` (`loss_type="simpo"`, on TRL's per-token mean log-probs) against
  `dpo_loss(..., --loss simpo)`: losses, chosen and rejected rewards.
- ORPO: `ORPOTrainer.odds_ratio_loss` against `--loss orpo`: the odds-ratio term (TRL returns β·log σ, subtracted
  from its NLL; kat the term to add, −β·log σ), the log-odds ratio, rewards. TRL casts to float32 here.
- KTO: `KTOTrainer.kto_loss` (`loss_type="kto"`, the KL reference point from mismatched examples) against
  `kto_loss`: per-example losses, rewards, z₀.
- RLOO advantages, PPO's KL penalty, GAE + whitening and the clipped policy and value losses are inline code in
  TRL's trainers (`_generate_and_score_completions`, `train`), not functions: the statements are taken from TRL's
  own source (`inspect.getsource`, between anchor lines that are checked) and executed on the inputs as they are.
  TRL's PPO rollout widens the value mask by one token and puts the score one position past the reply's last token
  (its `padding_mask_p1`); here both sides get the same masks, and the score placement, a documented difference,
  is left out of the KL-penalty check (only the `−β·kl` part is compared).

Prints one JSON object: the TRL and torch versions and, per check, the max absolute difference (≤ 1e-6 passes).
The differences that are not 0 are TRL's own float32 steps: ORPO casts the log-probs to float32, and
`masked_var`'s Bessel factor is an integer division (float32) even for float64 values.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import textwrap
import warnings
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
TOL = 1e-6


def _block(fn: Any, first: str, last: str) -> str:
    """The statements of `fn`'s source from the line starting with `first` through the one starting with `last`."""
    lines = inspect.getsource(fn).splitlines()
    starts = [i for i, x in enumerate(lines) if x.strip().startswith(first)]
    if not starts:
        raise SystemExit(f"TRL's {fn.__qualname__} has no line starting {first!r}: another TRL version?")
    i = starts[0]
    ends = [j for j in range(i, len(lines)) if lines[j].strip().startswith(last)]
    if not ends:
        raise SystemExit(f"TRL's {fn.__qualname__} has no line starting {last!r} after {first!r}")
    return textwrap.dedent("\n".join(lines[i : ends[0] + 1]))


def _run(code: str, **names: Any) -> dict[str, Any]:
    import torch

    scope: dict[str, Any] = {"torch": torch, **names}
    exec(compile(code, "<trl source>", "exec"), scope)  # noqa: S102 - TRL's own statements, on our inputs
    return scope


def _diff(a: Any, b: Any) -> float:
    import torch

    a, b = torch.as_tensor(a).double().reshape(-1), torch.as_tensor(b).double().reshape(-1)
    if a.shape != b.shape:
        raise SystemExit(f"shape mismatch {tuple(a.shape)} vs {tuple(b.shape)}")
    return float((a - b).abs().max()) if a.numel() else 0.0


def _inputs(n: int, seed: int) -> SimpleNamespace:
    import torch

    g = torch.Generator().manual_seed(seed)
    nc, nr = torch.randint(1, 40, (n,), generator=g), torch.randint(1, 40, (n,), generator=g)
    # Summed reply log-probs: per-token means in (−4, −0.05).
    pc = -(torch.rand(n, generator=g, dtype=torch.float64) * 3.95 + 0.05) * nc
    pr = -(torch.rand(n, generator=g, dtype=torch.float64) * 3.95 + 0.05) * nr
    rc = pc + torch.randn(n, generator=g, dtype=torch.float64) * 2
    rr = pr + torch.randn(n, generator=g, dtype=torch.float64) * 2
    kl_p = -(torch.rand(n, generator=g, dtype=torch.float64) * 60 + 1)
    kl_r = kl_p - torch.randn(n, generator=g, dtype=torch.float64) - 0.5  # mean log-ratio ≈ 0.5 > 0: z₀ not clamped
    return SimpleNamespace(n=n, nc=nc, nr=nr, pc=pc, pr=pr, rc=rc, rr=rr, kl_p=kl_p, kl_r=kl_r, g=g)


def simpo(x: SimpleNamespace) -> dict[str, float]:
    from trl.experimental.cpo import CPOTrainer

    from katcli.train.dpo_losses import DPOLossConfig, dpo_loss

    beta, gamma = 2.0, 0.7
    trl = object.__new__(CPOTrainer)
    trl.__dict__.update(alpha=0.0, beta=beta, loss_type="simpo", simpo_gamma=gamma, label_smoothing=0.0,
                        accelerator=SimpleNamespace(device="cpu"))
    losses, ch, rj = trl.cpo_loss(x.pc / x.nc, x.pr / x.nr)
    ours = dpo_loss(x.pc, x.pr, None, None, chosen_tokens=x.nc, rejected_tokens=x.nr,
                    cfg=DPOLossConfig(beta=beta, loss="simpo", simpo_gamma=gamma))
    return {"loss": _diff(losses, ours.preference), "rewards/chosen": _diff(ch, ours.rewards_chosen),
            "rewards/rejected": _diff(rj, ours.rewards_rejected)}


def orpo(x: SimpleNamespace) -> dict[str, float]:
    from trl.experimental.orpo import ORPOTrainer

    from katcli.train.dpo_losses import DPOLossConfig, dpo_loss

    beta = 0.25
    trl = object.__new__(ORPOTrainer)
    trl.__dict__.update(beta=beta, accelerator=SimpleNamespace(device="cpu"))
    losses, ch, rj, _, mean_log_odds = trl.odds_ratio_loss(x.pc / x.nc, x.pr / x.nr)
    ours = dpo_loss(x.pc.float(), x.pr.float(), None, None, chosen_tokens=x.nc, rejected_tokens=x.nr,
                    cfg=DPOLossConfig(beta=beta, loss="orpo"))
    return {"odds_ratio_term": _diff(-losses, ours.preference), "log_odds_mean": _diff(mean_log_odds,
                                                                                       ours.logits.mean()),
            "rewards/chosen": _diff(ch, ours.rewards_chosen), "rewards/rejected": _diff(rj, ours.rewards_rejected)}


def kto(x: SimpleNamespace) -> dict[str, float]:
    import torch
    from trl.experimental.kto import KTOTrainer

    from katcli.train.kto_losses import KTOLossConfig, kto_loss

    cfg = KTOLossConfig(beta=0.3, desirable_weight=1.3, undesirable_weight=0.8)
    trl = object.__new__(KTOTrainer)
    trl.__dict__.update(calculate_KL=True, beta=cfg.beta, loss_type="kto", desirable_weight=cfg.desirable_weight,
                        undesirable_weight=cfg.undesirable_weight,
                        accelerator=SimpleNamespace(device="cpu", gather_for_metrics=lambda t: t))
    losses, ch, rj, kl = trl.kto_loss(x.pc, x.pr, x.kl_p, x.rc, x.rr, x.kl_r)
    ours = kto_loss(x.pc, x.pr, x.rc, x.rr, cfg=cfg, policy_kl=x.kl_p, ref_kl=x.kl_r)
    return {"losses": _diff(losses, torch.cat([ours.chosen_losses, ours.rejected_losses])),
            "rewards/chosen": _diff(ch, ours.rewards_chosen), "rewards/rejected": _diff(rj, ours.rewards_rejected),
            "kl": _diff(kl, ours.kl)}


def rloo(x: SimpleNamespace) -> dict[str, float]:
    import torch
    from trl import RLOOTrainer

    from katcli.train.grpo_losses import rloo_advantages

    G = 8
    rewards = torch.randn(x.n * G // 8 * 8, generator=x.g, dtype=torch.float64)
    code = _block(RLOOTrainer._generate_and_score_completions, "grouped_rewards = rewards.view(", "advantages = (")
    out = _run(code, rewards=rewards, num_generations=G, self=SimpleNamespace(normalize_advantages=False))
    return {"advantages": _diff(out["advantages"], rloo_advantages(rewards, G).advantages)}


def _ppo_rollout(x: SimpleNamespace, B: int = 16, T: int = 24) -> SimpleNamespace:
    import torch

    g = x.g
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    idx = torch.arange(T).repeat(B, 1)
    padding_mask = idx > (lengths - 1)[:, None]  # TRL's convention: True off the reply
    mask = ~padding_mask
    logp = torch.where(mask, -torch.rand(B, T, generator=g, dtype=torch.float64) * 3, 1.0)  # 1.0: INVALID_LOGPROB
    ref = torch.where(mask, logp + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.1, 1.0)
    values = torch.where(mask, torch.randn(B, T, generator=g, dtype=torch.float64), 0.0)
    scores = torch.randn(B, generator=g, dtype=torch.float64)
    return SimpleNamespace(B=B, T=T, lengths=lengths, padding_mask=padding_mask, mask=mask, logp=logp, ref=ref,
                           values=values, scores=scores)


def ppo(x: SimpleNamespace) -> dict[str, float]:
    import torch
    from trl.experimental.ppo import PPOTrainer

    from katcli.train.ppo_losses import gae, kl_penalty_rewards, masked_whiten, policy_loss, value_loss

    r = _ppo_rollout(x)
    args = SimpleNamespace(kl_coef=0.05, kl_estimator="k1", gamma=0.97, lam=0.9, cliprange=0.2, cliprange_value=0.2,
                           vf_coef=0.1, whiten_rewards=False)
    src = PPOTrainer.train
    out: dict[str, float] = {}
    # The KL penalty in the reward (TRL's step 4), without the score (placed differently: see the docstring).
    kl_code = _block(src, "logr = ref_logprobs - logprobs", "non_score_reward = -args.kl_coef * kl")
    trl_kl = _run(kl_code, ref_logprobs=r.ref, logprobs=r.logp, args=args)
    rewards, _ = kl_penalty_rewards(torch.zeros(r.B, dtype=torch.float64), r.logp, r.ref, r.mask, kl_coef=0.05)
    out["kl_penalty"] = _diff(trl_kl["non_score_reward"], rewards)
    # GAE and advantage whitening (TRL's step 6) on the same per-token rewards (score on the last reply token).
    full, _ = kl_penalty_rewards(r.scores, r.logp, r.ref, r.mask, kl_coef=0.05)
    gae_code = _block(src, "lastgaelam = 0", "advantages = torch.masked_fill(advantages, padding_mask, 0)")
    trl_gae = _run(gae_code, rewards=full, values=r.values, responses=r.logp, args=args,
                   padding_mask=r.padding_mask, masked_whiten=_trl("masked_whiten"))
    adv, ret = gae(full, r.values, r.mask, gamma=args.gamma, lam=args.lam)
    out["gae_returns"] = _diff(trl_gae["returns"], ret)
    out["whitened_advantages"] = _diff(trl_gae["advantages"], masked_whiten(adv, r.mask))
    # The clipped value and policy losses of one micro-batch (TRL's inner loop).
    new_logp = torch.where(r.mask, r.logp + torch.randn(r.B, r.T, generator=x.g, dtype=torch.float64) * 0.2, 1.0)
    vpred = torch.where(r.mask, r.values + torch.randn(r.B, r.T, generator=x.g, dtype=torch.float64) * 0.5, 0.0)
    advantages = trl_gae["advantages"]
    loss_code = _block(src, "vpredclipped = torch.clamp(", "loss = pg_loss + args.vf_coef * vf_loss")
    everything = torch.arange(r.B)
    trl_loss = _run(loss_code, vpred=vpred, mb_values=r.values, mb_return=ret, args=args, new_logprobs=new_logp,
                    mb_logprobs=r.logp, mb_advantage=advantages, padding_mask=r.padding_mask,
                    padding_mask_p1=r.padding_mask, micro_batch_inds=everything, masked_mean=_trl("masked_mean"))
    pl = policy_loss(new_logp, r.logp, advantages, r.mask, cliprange=args.cliprange)
    vl = value_loss(vpred, r.values, ret, r.mask, cliprange_value=args.cliprange_value)
    out["policy_loss"] = _diff(trl_loss["pg_loss"], pl.mean)
    out["value_loss"] = _diff(trl_loss["vf_loss"], vl.mean)
    clip_code = _block(src, "pg_clipfrac = masked_mean(", ")")
    trl_clip = _run(clip_code, pg_losses2=trl_loss["pg_losses2"], pg_losses=trl_loss["pg_losses"],
                    padding_mask=r.padding_mask, micro_batch_inds=everything, masked_mean=_trl("masked_mean"))
    out["policy_clipfrac"] = _diff(trl_clip["pg_clipfrac"], pl.clipped / pl.tokens)
    out["value_clipfrac"] = _diff(trl_loss["vf_clipfrac"], vl.clipped / vl.tokens)
    return out


def _trl(name: str) -> Any:
    from trl.experimental.ppo import ppo_trainer

    return getattr(ppo_trainer, name)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=64)
    a = p.parse_args()
    warnings.filterwarnings("ignore")
    import torch
    import trl

    x = _inputs(a.n, a.seed)
    checks = {"simpo": simpo(x), "orpo": orpo(x), "kto": kto(x), "rloo_advantages": rloo(x), "ppo": ppo(x)}
    worst = max(v for c in checks.values() for v in c.values())
    print(json.dumps({
        "bench": "parity_trl", "trl_version": trl.__version__, "torch_version": torch.__version__,
        "seed": a.seed, "pairs": a.n, "tolerance": TOL, "max_abs_diff": worst, "all_within": worst <= TOL,
        "checks": checks,
        "not_compared": {"ppo_score_position": "TRL adds the score one token after the reply's last token "
                                              "(padding_mask_p1); kat on the last token (OpenRLHF, InstructGPT)"},
    }, indent=1))


if __name__ == "__main__":
    main()
