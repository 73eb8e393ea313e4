"""Scoring replies with a reward model: the same encoding it was trained on, batch-independent, length-fitted; and
the fixed held-out prompt choice of policy evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from modelkit import one_torch_thread, randomize, tiny_config  # noqa: F401
from rmkit import make_tokenizer, planted_pairs

from katcli.model.gpt import GPT
from katcli.model.run_meta import RunMeta
from katcli.train.evaluate import score_pairs
from katcli.train.policy_eval import pick_eval_prompts
from katcli.train.reward_model import RewardModel
from katcli.train.rm_scoring import RewardScorer
from katcli.train.sequences import encode_pairs

PAIRS = planted_pairs(12, per_prompt=1)
TOK = make_tokenizer(PAIRS)


@pytest.fixture(scope="module")
def rm() -> RewardModel:
    model = RewardModel(randomize(GPT(tiny_config(vocab_size=TOK.vocab_size)), seed=2, std=0.3))
    randomize(model, seed=3, std=0.3)
    return model.eval()


def test_scores_match_the_reward_models_training_encoding(rm):
    prompts = [p["prefix"]["messages"] for p in PAIRS]
    replies = [p["chosen"] for p in PAIRS]
    scorer = RewardScorer(rm, TOK, max_len=64, max_response_len=32, batch_size=5)
    got = scorer(prompts, replies)
    enc = encode_pairs(TOK, [(p["prefix"]["messages"], p["chosen"], p["rejected"]) for p in PAIRS], max_len=64,
                       max_response_len=32)
    _, rewards = score_pairs(rm, enc, np.arange(len(PAIRS)), batch_size=4, pad_id=TOK.bos_token_id,
                             device=rm.gpt.device)
    np.testing.assert_allclose(got, rewards[:, 0], rtol=1e-5, atol=1e-5)
    # A reply's reward does not depend on the others in its batch.
    alone = scorer(prompts[3:4], replies[3:4])
    np.testing.assert_allclose(alone, got[3:4], rtol=1e-5, atol=1e-5)


def test_long_replies_are_fitted_by_the_one_truncation_rule(rm):
    scorer = RewardScorer(rm, TOK, max_len=32, max_response_len=8)
    long_reply = " ".join(["apple river stone"] * 40)
    prompt = PAIRS[0]["prefix"]["messages"]
    cut = TOK.decode(TOK.encode(long_reply)[:8])
    np.testing.assert_allclose(scorer([prompt], [long_reply]), scorer([prompt], [cut]), rtol=1e-5, atol=1e-5)
    assert scorer([], []).shape == (0,)
    with pytest.raises(ValueError, match="2 prompts but 1 replies"):
        scorer([prompt, prompt], [cut])


def test_reward_scorer_reads_its_lengths_from_the_meta(rm):
    s = RewardScorer.from_meta(rm, TOK, RunMeta.from_json({"config": {"max_len": 96, "max_response_len": 40}}))
    assert (s.max_len, s.max_response_len) == (96, 40)
    s = RewardScorer.from_meta(rm, TOK, RunMeta.from_json({"config": {"max_len": 96, "max_response_len": None}}))
    assert s.max_response_len == 48


def test_eval_prompts_are_a_fixed_seeded_choice_of_distinct_prompts():
    pids = [f"p{i % 30}" for i in range(90)]  # 30 prompts, three rows each
    chosen = pick_eval_prompts(pids, 10, seed=0)
    assert len(chosen) == 10 and len({pids[i] for i in chosen}) == 10
    assert chosen == pick_eval_prompts(pids, 10, seed=0) != pick_eval_prompts(pids, 10, seed=1)
    # Reordering the rows picks the same prompts.
    rev = pids[::-1]
    assert {rev[i] for i in pick_eval_prompts(rev, 10, seed=0)} == {pids[i] for i in chosen}
    assert len(pick_eval_prompts(pids, 100, seed=0)) == 30
