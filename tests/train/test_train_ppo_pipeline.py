"""`run_train_ppo` end to end on planted data: it raises the planted reward (and lowers it when the reward is
negated), its value loss falls, it resumes bit for bit, and two gloo processes take one process's first step."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from rmkit import planted_rm_and_policy
from test_train_grpo_pipeline import _heldout_quality
from torchrunkit import torchrun

import katcli.train.objectives.grpo as grpo_mod
from katcli.errors import ConfigError, InterruptedRun
from katcli.pipeline.train_ppo import TrainPPOConfig, run_train_ppo, tiny_ppo_config
from katcli.train.objectives.ppo import minibatch_of


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    torch.set_num_threads(1)
    return planted_rm_and_policy(tmp_path_factory.mktemp("ppo") / "ws")


def _steps(result):
    lines = [json.loads(x) for x in (result.directory / "metrics.jsonl").read_text().splitlines()]
    return [x for x in lines if "type" not in x]


@pytest.mark.slow
def test_ppo_raises_the_planted_reward_its_negation_lowers_it_and_the_value_loss_falls(planted, monkeypatch):
    ws = planted
    base_reward, base_marker = _heldout_quality(ws, ws.abs("sft_checkpoints/uniform"))
    up = run_train_ppo(ws, tiny_ppo_config(name="up"))
    real = grpo_mod.rollout_rewards
    monkeypatch.setattr(grpo_mod, "rollout_rewards", lambda scorer, p, r: -real(scorer, p, r))
    down = run_train_ppo(ws, tiny_ppo_config(name="down"))
    up_reward, up_marker = _heldout_quality(ws, up.directory)
    down_reward, down_marker = _heldout_quality(ws, down.directory)
    assert up_reward > base_reward + 0.3 > down_reward + 0.6, (base_reward, up_reward, down_reward)
    assert up_marker > base_marker > down_marker, (base_marker, up_marker, down_marker)
    steps = _steps(up)
    value = [s["loss/value_avg"] for s in steps]
    assert np.mean(value[-5:]) < 0.5 * np.mean(value[:3]), value  # the critic learns the planted returns
    assert np.mean([s["reward"] for s in steps[-5:]]) > np.mean([s["reward"] for s in steps[:5]])
    for key in ("objective/scores", "objective/kl", "objective/rlhf_reward", "loss/policy_avg", "loss/value_avg",
                "policy/clipfrac_avg", "val/clipfrac_avg", "policy/approxkl_avg", "policy/entropy_avg",
                "completions/mean_length", "grad_norm", "tokens"):
        assert key in steps[0], key
    meta = json.loads(next(up.directory.glob("meta_*.json")).read_text())
    assert meta["objective"] == "ppo" and meta["critic"] == {"initialised_from": "reward_model"}
    assert meta["reference"] is None  # --kl-coef 0 loads none


def test_kl_penalty_starts_at_zero_and_the_critic_is_in_the_optimizer_file(planted):
    res = run_train_ppo(planted, tiny_ppo_config(name="kl", max_steps=2, kl_coef=0.1, eval_prompts=2,
                                                 batch_size=8))
    steps = _steps(res)
    assert steps[0]["objective/kl"] == pytest.approx(0.0, abs=1e-6)  # the reference is the starting policy
    optim = torch.load(res.directory / "optim_000002.pt", weights_only=False)
    assert "reward_head.weight" in optim["objective"]["critic"]
    model = torch.load(res.directory / "model_000002.pt", weights_only=True)
    assert "reward_head.weight" not in model  # the policy file stays a plain GPT


@pytest.mark.slow
def test_resume_after_an_interruption_gives_identical_files(planted):
    ws = planted
    cfg = tiny_ppo_config(name="straight", max_steps=5, save_every=2, eval_every=2, eval_prompts=4, batch_size=8,
                          kl_coef=0.05)
    run_train_ppo(ws, cfg)
    broken = TrainPPOConfig(**{**cfg.__dict__, "name": "broken"})

    def interrupt(record):
        if record["step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(InterruptedRun):
        run_train_ppo(ws, broken, on_step=interrupt)
    resumed = run_train_ppo(ws, TrainPPOConfig(**{**broken.__dict__, "resume": True}))
    assert resumed.resumed_from == 2 and resumed.step == 5
    a, b = ws.abs("ppo_checkpoints/straight"), ws.abs("ppo_checkpoints/broken")
    for name in ("model_000005.pt", "optim_000005.pt"):
        wa, wb = (torch.load(d / name, weights_only=False) for d in (a, b))
        flat_a = wa if name.startswith("model") else wa["objective"]["critic"]
        flat_b = wb if name.startswith("model") else wb["objective"]["critic"]
        assert all(torch.equal(flat_a[k], flat_b[k]) for k in flat_a)
    assert (a / "metrics.jsonl").read_bytes() == (b / "metrics.jsonl").read_bytes()


@pytest.mark.slow
def test_torchrun_two_processes_take_the_single_process_first_step(planted):
    ws = planted
    torchrun(
        ws, "train", "ppo", "--name", "ddp", "--rm", "uniform", "--init", "sft/uniform", "--max-steps", "1",
        "--prompts-per-step", "8", "--max-new-tokens", "8", "--max-len", "64", "--val-ratio", "0.2",
        "--kl-coef", "0.05", "--lr", "1e-3", "--eval-prompts", "4", "--device", "cpu", "--eval-every", "0",
        "--save-every", "0", "--ppo-epochs", "2", "--num-minibatches", "2",
    )
    two = [json.loads(x) for x in ws.abs("ppo_checkpoints/ddp/metrics.jsonl").read_text().splitlines()]
    single = run_train_ppo(ws, tiny_ppo_config(
        name="single", max_steps=1, batch_size=8, max_new_tokens=8, kl_coef=0.05, lr=1e-3, eval_prompts=4,
        warmup_steps=None, threads=None, vf_coef=0.1,
    ))
    one = _steps(single)
    assert one[0]["prompts"] == two[0]["prompts"] == 8
    for key in ("objective/scores", "objective/kl", "completions/mean_length"):  # the same rollouts
        assert one[0][key] == pytest.approx(two[0][key], rel=1e-5, abs=1e-7), key
    for key in ("loss/policy_avg", "loss/value_avg", "grad_norm"):  # the same minibatches and updates
        assert one[0][key] == pytest.approx(two[0][key], rel=1e-4, abs=1e-6), key


def test_minibatches_are_a_seeded_partition_independent_of_ranks():
    mb = minibatch_of((0, 3, 1), 10, 2)
    assert sorted(np.bincount(mb).tolist()) == [5, 5]
    assert np.array_equal(mb, minibatch_of((0, 3, 1), 10, 2))
    assert not np.array_equal(mb, minibatch_of((0, 3, 2), 10, 2))
    assert minibatch_of((0, 0, 0), 4, 1).tolist() == [0, 0, 0, 0]


def test_flags_are_checked_naming_them():
    with pytest.raises(ConfigError) as err:
        TrainPPOConfig(depth=1)
    assert err.value.message == "--rm is required: PPO needs a reward model to score its replies"
    with pytest.raises(ConfigError) as err:
        TrainPPOConfig(rm="x", lam=2.0)
    assert err.value.message == "--lam must be in [0, 1] (got 2.0)"
    with pytest.raises(ConfigError) as err:
        TrainPPOConfig(rm="x", fsdp=True)
    assert err.value.message == "--fsdp is not supported by kat train ppo yet"
