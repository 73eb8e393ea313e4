"""Sampling replies (seeded per prompt and sample, trimmed to the context) and scoring them with a reward model."""

from __future__ import annotations

import pytest
import torch
from modelkit import one_torch_thread, randomize, tiny_config, tokenizer  # noqa: F401

from katcli.errors import ConfigError
from katcli.evaluation.generate import GenerationConfig, generate_replies, render_prompts
from katcli.evaluation.scoring import score_replies, win_rate
from katcli.model.gpt import GPT
from katcli.train.reward_model import RewardModel
from katcli.train.rm_scoring import RewardScorer

PROMPTS = [
    [{"role": "user", "content": "Hello world!"}],
    [{"role": "user", "content": "How do I bake bread?"}, {"role": "assistant", "content": "Mix flour."},
     {"role": "user", "content": "And then?"}],
    [{"role": "user", "content": "Numbers like 12345"}],
]
IDS = ["p1", "p2", "p3"]


def test_win_rate_by_hand():
    # pairs: 1v2 lose, 1v3 lose, 2v2 tie (½), 2v3 lose → ½ of 4
    assert win_rate([1.0, 2.0], [2.0, 3.0]) == pytest.approx(0.125)
    assert win_rate([5.0, 1.0, 3.0], [5.0, 1.0, 3.0]) == 0.5  # against itself
    assert win_rate([9.0], [1.0, 2.0]) == 1.0 and win_rate([], [1.0]) is None


def test_replies_do_not_depend_on_their_batch(tokenizer):
    model = randomize(GPT(tiny_config(tokenizer.vocab_size)), seed=3).eval()
    cfg = GenerationConfig(samples=3, max_new_tokens=8, temperature=1.2, seed=7, batch_prompts=3)
    together, counts = generate_replies(model, tokenizer, PROMPTS, IDS, cfg)
    one_by_one, _ = generate_replies(model, tokenizer, PROMPTS, IDS, GenerationConfig(**{**cfg.__dict__, "batch_prompts": 1}))
    assert together == one_by_one
    assert [len(r) for r in together] == [3, 3, 3]
    assert counts["tokens"] == sum(r.tokens for rs in together for r in rs) > 0
    assert len({r.text for r in together[0]}) > 1  # its samples differ
    reseeded, _ = generate_replies(model, tokenizer, PROMPTS, IDS, GenerationConfig(**{**cfg.__dict__, "seed": 8}))
    assert reseeded != together
    assert all(r.truncated == (r.tokens == 8) for rs in together for r in rs)


def test_long_prompts_keep_bos_and_the_final_user_turn(tokenizer):
    long = [[{"role": "user", "content": "old words " * 40}, {"role": "assistant", "content": "fine"},
             {"role": "user", "content": "last question"}]]
    (ids,), trimmed = render_prompts(tokenizer, long, context=64, max_new_tokens=24, name="p")
    full = tokenizer.render_for_completion(long[0])
    assert trimmed == 1 and len(ids) == 40 and ids[0] == tokenizer.bos_token_id and ids[1:] == full[-39:]
    with pytest.raises(ConfigError, match="--max-new-tokens 60 leaves no room for a prompt in p's context of 64"):
        render_prompts(tokenizer, long, context=64, max_new_tokens=60, name="p")


def test_each_reply_is_scored_like_a_reward_model_training_sequence(tokenizer):
    rm = RewardModel(randomize(GPT(tiny_config(tokenizer.vocab_size)), seed=5))
    with torch.no_grad():
        rm.head.weight.normal_(0, 1, generator=torch.Generator().manual_seed(0))
    rm.eval()
    replies = [["the quick fox", "a b", "brown dog jumps"], ["yes"], []]
    got = score_replies(RewardScorer(rm, tokenizer, max_len=64, max_response_len=32, batch_size=2), PROMPTS, replies)
    end = tokenizer.encode_special("<|assistant_end|>")
    assert [len(g) for g in got] == [3, 1, 0]
    for i, texts in enumerate(replies):
        for k, text in enumerate(texts):
            ids = tokenizer.render_for_completion(PROMPTS[i]) + tokenizer.encode(text) + [end]
            with torch.no_grad():
                want = float(rm(torch.tensor([ids]), torch.tensor([len(ids)]))[0])
            assert got[i][k] == pytest.approx(want, abs=1e-4)
