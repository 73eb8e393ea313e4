"""The reward model reads the last real token: padding cannot move a reward, the response always can."""

from __future__ import annotations

import torch

from katcli.model.gpt import GPT, GPTConfig
from katcli.train.reward_model import HEAD_KEY, RewardModel


def _rm(seed: int = 0) -> RewardModel:
    torch.manual_seed(seed)
    rm = RewardModel(GPT(GPTConfig(sequence_len=32, vocab_size=50, n_layer=2, n_head=2, n_kv_head=2, n_embd=32)))
    with torch.no_grad():
        for p in rm.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return rm.eval()


def test_fresh_head_gives_zero_rewards_and_a_frozen_lm_head():
    rm = RewardModel(GPT(GPTConfig(sequence_len=16, vocab_size=40, n_layer=1, n_head=1, n_kv_head=1, n_embd=16)))
    r = rm(torch.randint(0, 40, (3, 7)), torch.tensor([7, 5, 2]))
    assert r.tolist() == [0.0, 0.0, 0.0]
    assert not rm.gpt.lm_head.weight.requires_grad
    assert all(p is not rm.gpt.lm_head.weight for p in rm.trainable_parameters())


def test_right_padding_does_not_change_a_reward():
    rm = _rm()
    short = torch.tensor([[1, 2, 3, 4]])
    long = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])
    alone = rm(short, torch.tensor([4]))
    padded = torch.cat([torch.cat([short, torch.full((1, 3), 49)], 1), long])
    batched = rm(padded, torch.tensor([4, 7]))
    assert torch.allclose(batched[0], alone[0], atol=1e-6)
    garbage = padded.clone()
    garbage[0, 4:] = torch.tensor([13, 17, 19])
    assert torch.allclose(rm(garbage, torch.tensor([4, 7])), batched, atol=1e-6)


def test_the_response_moves_the_reward():
    rm = _rm()
    a = torch.tensor([[1, 2, 3, 4, 5]])
    b = torch.tensor([[1, 2, 3, 9, 5]])  # same prefix and final token, different response token
    assert not torch.allclose(rm(a, torch.tensor([5])), rm(b, torch.tensor([5])))


def test_checkpoint_state_round_trip():
    rm = _rm(1)
    state = rm.checkpoint_state()
    assert set(state) == set(rm.gpt.state_dict()) | {HEAD_KEY}
    other = _rm(2)
    other.load_checkpoint_state(state)
    for k, v in other.checkpoint_state().items():
        assert torch.equal(v, state[k])
