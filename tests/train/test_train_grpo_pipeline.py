"""`run_train_grpo` end to end on planted data: it moves the reward the planted way (and the other way when the
reward is negated), trains only on training prompts, resumes bit for bit and runs under torchrun."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from rmkit import MARKER, planted_rm_and_policy
from torchrunkit import torchrun

import katcli.train.objectives.grpo as grpo_mod
from katcli.errors import ConfigError, InterruptedRun, KatError
from katcli.model.engine import Engine, SamplingConfig
from katcli.pipeline.train_grpo import TrainGRPOConfig, run_train_grpo, tiny_grpo_config
from katcli.train import inputs as I
from katcli.train.rm_scoring import RewardScorer
from katcli.train.rollout import rollout_seed
from katcli.train.run_dir import load_run
from katcli.train.split import split_pairs
from katcli.workspace import Manifest
from katcli.workspace import paths as P


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """One planted workspace (RM + weak SFT policy) shared by this module; tests write runs of their own names."""
    torch.set_num_threads(1)
    return planted_rm_and_policy(tmp_path_factory.mktemp("grpo") / "ws")


def _heldout_quality(ws, policy_dir, n_prompts: int = 48, k: int = 4) -> tuple[float, float]:
    """(mean reward, share of replies containing the marker) of sampled replies to held-out prompts, measured here
    independently of the stage's own evaluation."""
    gpt = load_run(policy_dir).model
    from katcli.model.tokenizer import Tokenizer

    tok = Tokenizer.load(policy_dir / "tokenizer.json")
    rm_dir = ws.abs("rm_checkpoints/uniform")
    rm = load_run(rm_dir, role="reward")
    scorer = RewardScorer.from_meta(rm.model, Tokenizer.load(rm_dir / "tokenizer.json"), rm.meta)
    pairs = I.read_pairs(ws.abs(P.PAIRS))
    split = split_pairs([p.prefix_id for p in pairs], seed=0, val_ratio=0.2)
    seen, rows = set(), []
    for i in split.heldout:
        if pairs[i].prefix_id not in seen:
            seen.add(pairs[i].prefix_id)
            rows.append(i)
    rows = rows[:n_prompts]
    prompts = [tok.render_for_completion(list(pairs[i].messages)) for i in rows]
    seeds = [rollout_seed(7, 0, pairs[i].prefix_id, j) for i in rows for j in range(k)]
    gen = Engine(gpt, tok).generate(prompts, SamplingConfig(max_new_tokens=10, num_samples=k), row_seeds=seeds)
    texts = [tok.decode(gen.completion(r)) for r in range(gen.tokens.size(0))]
    rewards = scorer([pairs[i].messages for i in rows for _ in range(k)], texts)
    return float(rewards.mean()), float(np.mean([MARKER in t.split() for t in texts]))


@pytest.mark.slow
def test_grpo_raises_the_planted_reward_and_its_negation_lowers_it(planted, monkeypatch):
    ws = planted
    base_reward, base_marker = _heldout_quality(ws, ws.abs("sft_checkpoints/uniform"))
    up = run_train_grpo(ws, tiny_grpo_config(name="up"))
    real = grpo_mod.rollout_rewards
    monkeypatch.setattr(grpo_mod, "rollout_rewards", lambda scorer, p, r: -real(scorer, p, r))
    down = run_train_grpo(ws, tiny_grpo_config(name="down"))
    up_reward, up_marker = _heldout_quality(ws, up.directory)
    down_reward, down_marker = _heldout_quality(ws, down.directory)
    assert up_reward > base_reward + 0.3 > down_reward + 0.6, (base_reward, up_reward, down_reward)
    assert up_marker > base_marker > down_marker, (base_marker, up_marker, down_marker)
    # The stage's own held-out evaluation (same RM, fixed prompts) agrees.
    assert up.eval.overall.sampled_sum / up.eval.overall.samples > \
        down.eval.overall.sampled_sum / down.eval.overall.samples
    # Training rollouts' mean reward went up over the run (first vs last quarter of the steps).
    lines = [json.loads(x) for x in (up.directory / "metrics.jsonl").read_text().splitlines()]
    steps = [x["reward"] for x in lines if "type" not in x]
    assert np.mean(steps[-5:]) > np.mean(steps[:5])


def test_rollouts_use_training_prompts_only_seeded_per_reply(planted, monkeypatch):
    ws = planted
    seen: list[str] = []
    real = grpo_mod.rollout_rewards

    def spy(scorer, prompts, replies):
        seen.extend(m[0]["content"] for m in prompts)
        return real(scorer, prompts, replies)

    monkeypatch.setattr(grpo_mod, "rollout_rewards", spy)
    res = run_train_grpo(ws, tiny_grpo_config(name="spy", max_steps=2, density_aware=True, eval_prompts=4))
    pairs = I.read_pairs(ws.abs(P.PAIRS))
    split = split_pairs([p.prefix_id for p in pairs], seed=0, val_ratio=0.2)
    held = {pairs[i].messages[0]["content"] for i in split.heldout}
    assert len(seen) == 2 * 8 * 8  # steps × prompts per step × group size
    assert not set(seen) & held
    assert res.train_items == len({pairs[i].prefix_id for i in split.train}) == res.train_prompts
    assert res.item_noun == "prompts" and res.ess_fraction < 0.95  # density weights: fewer effective prompts
    lines = [json.loads(x) for x in (res.directory / "metrics.jsonl").read_text().splitlines()]
    step = lines[0]
    for key in ("reward", "reward_std", "frac_reward_zero_std", "clip_ratio/low_mean", "clip_ratio/high_mean",
                "entropy", "completions/mean_length", "completions/max_length", "completions/clipped_ratio",
                "reward/q1_mean", "reward/q5_std"):
        assert key in step, key
    assert step["kl"] is None and step["replies"] == 64 and step["prompts"] == 8
    assert not {"rollout_s", "scoring_s", "logprob_s", "update_s", "tokens_per_s"} & set(step)  # no wall clock
    ev = lines[-1]
    assert ev["type"] == "eval" and ev["overall"]["n"] == 4 and len(ev["by_quintile"]) == 5
    run = Manifest.load(ws.manifest_path).runs["grpo/spy"]
    inputs = {i.path for i in run.inputs}
    assert {"rm_checkpoints/uniform/tokenizer.json", P.DENSITY_WEIGHTS} <= inputs
    assert any(p.startswith("rm_checkpoints/uniform/model_") for p in inputs)
    assert any(p.startswith("sft_checkpoints/uniform/model_") for p in inputs)
    assert run.stats["time_rollout_s"] > 0 and run.stats["rollout_tokens_per_s"] > 0
    assert run.stats["heldout_reward"]["n"] == 4
    meta = json.loads(next(res.directory.glob("meta_*.json")).read_text())
    assert meta["kind"] == "kat-policy" and meta["reward_model"]["name"] == "uniform"
    assert meta["reference"] is None  # --beta 0 loads no reference


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_the_step_is_the_same_for_any_micro_batch_split(planted, loss_type):
    # The loss is normalised by the whole step's denominator, so accumulating micro-batches of 1 prompt gives the
    # gradient one forward over all 8 prompts gives (a per-micro-batch mean would change its norm). Adam's first
    # step hardly depends on the gradient's scale, so the gradient norm is what is compared.
    runs = [
        run_train_grpo(planted, tiny_grpo_config(name=f"mb{m}-{loss_type}", max_steps=1, micro_batch_size=m,
                                                 loss_type=loss_type, eval_prompts=2))
        for m in (None, 1)
    ]
    la, lb = ([json.loads(x) for x in (r.directory / "metrics.jsonl").read_text().splitlines()] for r in runs)
    assert la[0]["grad_norm"] == pytest.approx(lb[0]["grad_norm"], rel=1e-4)
    assert la[0]["loss"] == pytest.approx(lb[0]["loss"], rel=1e-4, abs=1e-6)
    assert la[0]["grad_norm"] > 0


def test_kl_to_the_reference_is_measured_and_starts_at_zero(planted):
    res = run_train_grpo(planted, tiny_grpo_config(name="kl", max_steps=3, beta=0.1, eval_prompts=2, lr=1e-2))
    lines = [json.loads(x) for x in (res.directory / "metrics.jsonl").read_text().splitlines() if '"eval"' not in x]
    assert lines[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # the reference is the starting policy
    assert lines[-1]["kl"] > 1e-5
    meta = json.loads(next(res.directory.glob("meta_*.json")).read_text())
    assert meta["reference"]["same_as"] == "init"
    # What `kat eval policy` reads to warn that scoring with this reward model is optimistic.
    from katcli.model.run_meta import RunMeta

    trained = RunMeta.from_json(meta).trained_rm
    assert trained is not None and trained["name"] == "uniform"
    assert planted.abs(trained["path"]).resolve() == planted.abs("rm_checkpoints/uniform").resolve()


@pytest.mark.slow
def test_resume_after_an_interruption_gives_identical_files(planted):
    ws = planted
    cfg = tiny_grpo_config(name="straight", max_steps=5, save_every=2, eval_every=2, eval_prompts=4,
                           num_iterations=2, beta=0.05)
    run_train_grpo(ws, cfg)
    broken = TrainGRPOConfig(**{**cfg.__dict__, "name": "broken"})

    def interrupt(record):
        if record["step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(InterruptedRun):
        run_train_grpo(ws, broken, on_step=interrupt)
    resumed = run_train_grpo(ws, TrainGRPOConfig(**{**broken.__dict__, "resume": True}))
    assert resumed.resumed_from == 2 and resumed.step == 5
    a, b = ws.abs("grpo_checkpoints/straight"), ws.abs("grpo_checkpoints/broken")
    wa = torch.load(a / "model_000005.pt", weights_only=True)
    wb = torch.load(b / "model_000005.pt", weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (a / "metrics.jsonl").read_bytes() == (b / "metrics.jsonl").read_bytes()


def test_flag_errors_name_the_flag():
    with pytest.raises(ConfigError) as err:
        TrainGRPOConfig(depth=1)
    assert err.value.message == "--rm is required: GRPO needs a reward model to score its replies"
    with pytest.raises(ConfigError, match=r"^--group-size must be at least 2, got 1"):
        TrainGRPOConfig(rm="x", group_size=1, scale_rewards="group")
    with pytest.raises(ConfigError) as err:
        TrainGRPOConfig(rm="x", epsilon=0.2, epsilon_high=0.1)
    assert err.value.message == "--epsilon-high (0.1) is below --epsilon (0.2)"
    with pytest.raises(ConfigError) as err:
        TrainGRPOConfig(rm="x", max_len=64, max_new_tokens=60)
    assert err.value.message == (
        "--max-new-tokens 60 leaves no room for the prompt in the model's context (--max-len 64, of which a "
        "prompt keeps at least 8 tokens)"
    )


def test_bad_reward_models_and_references_are_refused(planted, tmp_path):
    ws = planted
    with pytest.raises(KatError) as err:
        run_train_grpo(ws, tiny_grpo_config(name="bad", rm="nope"))
    assert err.value.message == "--rm nope: no such run or checkpoint directory"
    with pytest.raises(KatError) as err:
        run_train_grpo(ws, tiny_grpo_config(name="bad", rm=str(ws.abs("sft_checkpoints/uniform"))))
    assert err.value.message.endswith("not a kat reward-model checkpoint (it is a kat policy)")
    assert err.value.message.startswith("--rm ")
    # A reward model trained on other pairs (here: a copy whose meta records another pairs file).
    stale = tmp_path / "stale_rm"
    shutil.copytree(ws.abs("rm_checkpoints/uniform"), stale)
    meta_path = next(stale.glob("meta_*.json"))
    meta = json.loads(meta_path.read_text())
    meta["inputs"][P.PAIRS] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(KatError) as err:
        run_train_grpo(ws, tiny_grpo_config(name="bad", rm=str(stale)))
    assert err.value.message == (
        f"--rm {stale} was trained on another version of {P.PAIRS}, so its rewards (and its held-out prompts) "
        "belong to other pairs"
    )
    assert err.value.hint == "retrain it with `kat train rm --name stale_rm` on the current pairs"
    # A reference whose vocabulary is not the policy's.
    from katcli.model.checkpoint import save_checkpoint
    from katcli.model.gpt import GPT, GPTConfig

    other = GPT(GPTConfig.from_depth(1, vocab_size=77, sequence_len=64))
    save_checkpoint(tmp_path / "ref", 1, other.state_dict(), {"kind": "kat-policy", "model_config": other.config.to_dict()}, None)
    with pytest.raises(KatError) as err:
        run_train_grpo(ws, tiny_grpo_config(name="bad", ref=str(tmp_path / "ref"), beta=0.1))
    assert err.value.message == "--ref has 77 token ids but the policy has 300"


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["ddp", "fsdp"])
def test_torchrun_two_processes_write_one_checkpoint_with_the_single_process_batch(planted, layout):
    """DDP, and FSDP (whose rollouts and evaluation run on the gathered weights) give one process's step."""
    ws = planted
    proc = torchrun(
        ws, "train", "grpo", "--name", layout,
        "--rm", "uniform", "--init", "sft/uniform", "--max-steps", "2", "--prompts-per-step", "4",
        "--group-size", "4", "--max-new-tokens", "8", "--max-len", "64", "--val-ratio", "0.2",
        "--scale-rewards", "batch", "--beta", "0", "--lr", "1e-3", "--eval-prompts", "4", "--device", "cpu",
        "--eval-every", "0", "--save-every", "0", *(["--fsdp"] if layout == "fsdp" else []),
    )
    run_dir = ws.abs(f"grpo_checkpoints/{layout}")
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "meta_000002.json", "metrics.jsonl", "model_000002.pt", "optim_000002.pt", "tokenizer.json",
    ]
    assert proc.stdout.count("Trained 2 steps on cpu × 2" + (" (FSDP)" if layout == "fsdp" else "") + ":") == 1
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["replies"] for x in lines if "type" not in x] == [16, 16]  # the global batch, over both ranks
    # One process, same flags: the same rollouts, so the same rewards (the global batch is the same).
    single = run_train_grpo(ws, tiny_grpo_config(
        name="single", max_steps=2, batch_size=4, group_size=4, max_new_tokens=8, scale_rewards="batch", lr=1e-3,
        eval_prompts=4, warmup_steps=None, threads=None,
    ))
    one = [json.loads(x) for x in (single.directory / "metrics.jsonl").read_text().splitlines()]
    # Step 1 samples from the same starting weights with the same per-reply seeds: the same replies and rewards.
    assert one[0]["reward"] == pytest.approx(lines[0]["reward"], rel=1e-5)
    assert one[0]["completions/mean_length"] == lines[0]["completions/mean_length"]
    # …and the same update: `batch` advantages use every rank's rewards, the loss the global token count.
    assert one[0]["loss"] == pytest.approx(lines[0]["loss"], rel=1e-4, abs=1e-6)
    assert one[0]["grad_norm"] == pytest.approx(lines[0]["grad_norm"], rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("advantage", ["rloo", "reinforce++"])
def test_rloo_and_reinforce_pp_raise_the_planted_reward_and_its_negation_lowers_it(planted, monkeypatch, advantage):
    ws = planted
    base_reward, base_marker = _heldout_quality(ws, ws.abs("sft_checkpoints/uniform"))
    up = run_train_grpo(ws, tiny_grpo_config(name=f"{advantage.strip('+')}-up", advantage=advantage))
    real = grpo_mod.rollout_rewards
    monkeypatch.setattr(grpo_mod, "rollout_rewards", lambda scorer, p, r: -real(scorer, p, r))
    down = run_train_grpo(ws, tiny_grpo_config(name=f"{advantage.strip('+')}-down", advantage=advantage))
    up_reward, up_marker = _heldout_quality(ws, up.directory)
    down_reward, down_marker = _heldout_quality(ws, down.directory)
    assert up_reward > base_reward + 0.3 > down_reward + 0.6, (base_reward, up_reward, down_reward)
    assert up_marker > base_marker > down_marker, (base_marker, up_marker, down_marker)
    meta = json.loads(next(up.directory.glob("meta_*.json")).read_text())
    assert meta["config"]["advantage"] == advantage


def test_the_default_advantage_is_not_recorded_so_default_runs_keep_their_bytes():
    assert "advantage" not in tiny_grpo_config().params()
    assert tiny_grpo_config(advantage="rloo").params()["advantage"] == "rloo"
    with pytest.raises(ConfigError) as err:
        tiny_grpo_config(advantage="reinforce++", scale_rewards="none")
    assert err.value.message == "--scale-rewards none only applies to --advantage group, not --advantage reinforce++"
