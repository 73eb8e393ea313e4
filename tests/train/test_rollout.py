"""Rollout bookkeeping: stable, independent per-reply seeds; Engine output laid out so a forward reproduces logπ_old;
and a few GRPO steps (Engine → rollout → advantages → loss) that must move a planted reward the right way."""

from __future__ import annotations

import itertools

import pytest
import torch

from katcli.model.engine import Engine, Generation, SamplingConfig
from katcli.model.gpt import GPT
from katcli.train.grpo_losses import GRPOConfig, group_advantages, grpo_loss
from katcli.train.rollout import SEED_BITS, Rollout, rollout_logprobs, rollout_seed

from modelkit import one_torch_thread, randomize, tiny_config  # noqa: F401

# ------------------------------------------------------------------------------------------------ seeds


def test_rollout_seed_is_pinned():
    # sha256("kat-rollout:0:7:3f2a9c01d4e5b6a7:2")[:8] >> 1. A constant also catches a salted hash() (which would
    # differ from process to process); a change here re-seeds every run's rollouts.
    assert rollout_seed(0, 7, "3f2a9c01d4e5b6a7", 2) == 6874997934886720093


def test_every_component_changes_the_seed_and_none_collide():
    grid = list(itertools.product(range(4), range(6), ["a", "b", "a:1", "1"], range(8)))
    seeds = [rollout_seed(*key) for key in grid]
    assert len(set(seeds)) == len(grid)
    assert all(0 <= s < 2**SEED_BITS for s in seeds)
    # Colons in a prompt id cannot alias another (step, prompt, sample) split of the same text.
    assert rollout_seed(0, 1, "2:3", 4) != rollout_seed(0, 1, "2", 34)
    assert rollout_seed(1, 2, "p", 3) == rollout_seed(1, 2, "p", 3)


def test_seeds_look_uniform():
    # Top 4 bits of 4,000 consecutive replies' seeds: chi-square over 16 cells (df 15, p = 0.001 critical 37.7).
    seeds = [rollout_seed(0, step, "prompt", k) for step in range(500) for k in range(8)]
    counts = torch.bincount(torch.tensor([s >> (SEED_BITS - 4) for s in seeds]), minlength=16).double()
    expected = len(seeds) / 16
    assert float(((counts - expected) ** 2 / expected).sum()) < 37.7


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_rollout_seed_refuses_non_integers(bad):
    with pytest.raises(ValueError, match="step must be a non-negative int"):
        rollout_seed(0, bad, "p", 0)


# ------------------------------------------------------------------------------------------------ layout

STOPS = tuple(range(8))  # a fifth of the vocabulary: some replies stop within 6 tokens, some do not
PROMPTS = [[5, 9, 11, 3], [4, 8], [12, 13, 14]]


@pytest.fixture
def model() -> GPT:
    return randomize(GPT(tiny_config(vocab_size=40)), seed=3, std=0.4).eval()


def _generate(model: GPT, **kw) -> Generation:
    cfg = SamplingConfig(max_new_tokens=6, temperature=1.0, num_samples=3, seed=1, **kw)
    return Engine(model, stop_token_ids=STOPS).generate(PROMPTS, cfg)


def test_rollout_rows_are_left_padded_prompt_then_reply(model):
    gen = _generate(model)
    ro = Rollout.from_generation(PROMPTS, gen)
    B, L = gen.tokens.shape
    assert ro.ids.shape == (9, 4 + L) and ro.prompt_width == 4
    for r in range(B):
        p = PROMPTS[r // 3]
        n = int(gen.mask[r].sum())
        row = ro.ids[r][ro.real[r]].tolist()
        assert row == p + gen.tokens[r, :n].tolist()
        assert ro.real[r, : 4 - len(p)].tolist() == [False] * (4 - len(p))
        assert ro.lengths[r] == n
        assert bool(ro.truncated[r]) == (n == 6 and int(gen.tokens[r, n - 1]) not in STOPS)
    assert ro.prompt_index.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert ro.truncated_ratio == pytest.approx(float(ro.truncated.float().mean()))


def test_some_replies_stop_and_some_are_truncated(model):
    ro = Rollout.from_generation(PROMPTS, _generate(model))
    # The planted settings must exercise both cases, or the layout test above proves less than it says.
    assert ro.truncated.any() and (~ro.truncated).any()


def test_a_training_forward_reproduces_the_sampling_logprobs(model):
    gen = _generate(model)
    ro = Rollout.from_generation(PROMPTS, gen)
    logp = rollout_logprobs(model, ro)
    torch.testing.assert_close(logp, ro.old_logp, atol=2e-5, rtol=1e-5)
    assert (logp[ro.mask == 0] == 0).all()


def test_reply_logprobs_carry_gradient_and_micro_batches_match(model):
    ro = Rollout.from_generation(PROMPTS, _generate(model))
    model.train()
    logp = rollout_logprobs(model, ro)
    logp.sum().backward()
    assert model.lm_head.weight.grad is not None and model.lm_head.weight.grad.abs().sum() > 0
    with torch.no_grad():
        torch.testing.assert_close(rollout_logprobs(model, ro.rows(slice(3, 6))), logp.detach()[3:6], atol=2e-5, rtol=0)


def test_reply_entropy_is_the_full_distributions_entropy(model):
    ro = Rollout.from_generation(PROMPTS, _generate(model))
    logp, entropy = rollout_logprobs(model, ro, with_entropy=True)
    with torch.no_grad():
        logits = model(ro.ids, pad_mask=ro.real)  # [B, P + L, V]
        P, L = ro.prompt_width, ro.completion.size(1)
        full = torch.log_softmax(logits[:, P - 1 : P - 1 + L].float(), dim=-1)
        want = -(full.exp() * full).sum(-1) * ro.mask
        want_logp = full.gather(2, ro.completion[..., None]).squeeze(-1) * ro.mask
    torch.testing.assert_close(entropy, want, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(logp, want_logp, atol=2e-5, rtol=1e-5)
    assert (entropy[ro.mask == 1] > 0).all()


def test_rollout_refuses_a_generation_for_other_prompts(model):
    gen = _generate(model)
    with pytest.raises(ValueError, match="9 generated rows do not match 2 prompts × 3 samples"):
        Rollout.from_generation(PROMPTS[:2], gen)


# ------------------------------------------------------------------------------------------------ planted GRPO


def _grpo_run(sign: float, steps: int = 10) -> tuple[float, float]:
    """GRPO on a planted reward (the share of reply tokens equal to 20) with the real Engine, layout and loss.

    `sign=-1` negates the reward: the same code must then drive the share down. Returns (first, last) mean reward
    over three steps each.
    """
    torch.manual_seed(0)
    model = randomize(GPT(tiny_config(vocab_size=40)), seed=5, std=0.3)
    engine = Engine(model, stop_token_ids=[])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    config = GRPOConfig(group_size=8, loss_type="dapo", scale_rewards="group")
    history = []
    for step in range(steps):
        model.eval()
        gen = engine.generate(PROMPTS, SamplingConfig(max_new_tokens=6, num_samples=8, seed=step))
        ro = Rollout.from_generation(PROMPTS, gen)
        share = ((ro.completion == 20) & ro.mask.bool()).sum(1).float() / ro.lengths
        history.append(float(share.mean()))
        adv = group_advantages(sign * share, 8, config.scale_rewards).advantages
        model.train()
        out = grpo_loss(rollout_logprobs(model, ro), ro.old_logp, None, adv, ro.mask, config, max_new_tokens=6)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    return sum(history[:3]) / 3, sum(history[-3:]) / 3


def test_grpo_steps_raise_a_planted_reward_and_lower_its_negation():
    first, last = _grpo_run(+1.0)
    assert last > first + 0.3  # 0.07 → about 0.8 in 10 steps
    first, last = _grpo_run(-1.0)
    assert last < first
