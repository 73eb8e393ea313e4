"""`kat train grpo`: flags → config, the summary it prints, and its errors (exact messages, exit codes)."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import rmkit
from modelkit import one_torch_thread  # noqa: F401  (autouse fixture: tiny models run on one thread)

TINY = ["--rm", "uniform", "--init", "sft/uniform", "--max-steps", "2", "--prompts-per-step", "4",
        "--group-size", "4", "--max-new-tokens", "6", "--max-len", "64", "--val-ratio", "0.2", "--beta", "0",
        "--lr", "1e-3", "--eval-prompts", "4", "--device", "cpu", "--threads", "1"]


@pytest.fixture
def trained(ws_dir):
    """The workspace with a (barely) trained reward model and SFT policy."""
    return rmkit.planted_rm_and_policy(ws_dir, n_prompts=60, rm_steps=3, sft_steps=2)


def test_train_grpo_prints_sampling_time_split_and_heldout_reward(kat, ws_dir, trained):
    result = kat("train", "grpo", *TINY, "--density-aware")
    assert result.exit_code == 0, result.stdout + result.stderr
    out = result.stdout
    # the weighting reads as density-aware (a bare "per-prompt" read as uniform over prompts), prompts counted once
    sampling = next(line for line in out.splitlines() if line.startswith("Sampling: "))
    assert re.fullmatch(r"Sampling: density-aware \(per-prompt\) over [\d,]+ training prompts; effective sample size "
                        r"[\d,.]+ \([\d.]+% of the prompts\)", sampling), sampling
    assert "Trained 2 steps on cpu × 1: " in out
    assert "Time: rollout " in out and "reply tokens/s), scoring " in out and "updates " in out
    assert "Held-out reward (4 prompts)" in out
    for row in ("overall", "Q1 commonest", "Q5 rarest", "Greedy", "Sampled"):
        assert row in out
    assert out.rstrip().endswith(f"Wrote {ws_dir.resolve()}/grpo_checkpoints/density")
    status = kat("status", "--json")
    assert '"key": "grpo/density"' in status.stdout


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        ([], "Error: --rm is required: GRPO needs a reward model to score its replies\n"
             "Hint: train one with `kat train rm` and pass its run name, e.g. --rm uniform\n"),
        (["--rm", "x", "--group-size", "1"],
         "Error: --group-size must be at least 2, got 1: a reply's advantage is its reward minus its group's mean, "
         "so a group of one has no variance (--scale-rewards group would divide by the spread of a single reward)\n"
         "Hint: use --group-size 4 or more (GRPO papers use 8 to 64)\n"),
        (["--rm", "x", "--epsilon-high", "0.1"],
         "Error: --epsilon-high (0.1) is below --epsilon (0.2)\n"
         "Hint: --epsilon-high widens the upper clip (DAPO uses 0.28 with --epsilon 0.2); omit it for a symmetric "
         "clip\n"),
        (["--rm", "x", "--max-new-tokens", "600"],
         "Error: --max-new-tokens 600 leaves no room for the prompt in the model's context (--max-len 512, of "
         "which a prompt keeps at least 8 tokens)\n"
         "Hint: use --max-new-tokens 504 or less, or raise --max-len (up to what the model supports)\n"),
        (["--rm", "x", "--scale-rewards", "rank"],
         "Error: unknown --scale-rewards 'rank'\nHint: choose one of group, batch, none\n"),
    ],
)
def test_flag_errors_name_the_flag(kat, ws_dir, args, stderr):
    result = kat("train", "grpo", *args)
    assert result.exit_code == 1
    assert result.stderr == stderr


def test_bad_reward_models_and_references(kat, ws_dir, trained, tmp_path):
    base = [a for a in TINY]
    i = base.index("--rm")

    def with_rm(rm: str, *extra: str):
        args = base[:i + 1] + [rm] + base[i + 2:]
        return kat("-q", "train", "grpo", *args, *extra)  # -q: no progress bars before the error

    result = with_rm("nope")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: --rm nope: no such run or checkpoint directory\n"
        "Hint: pass a run name from rm_checkpoints/ (or STAGE/NAME), or a directory holding model_<step>.pt + "
        "meta_<step>.json\n"
    )
    result = with_rm("sft/uniform")  # a run of another stage: said so, not "no such run"
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: --rm sft/uniform: that is a run of sft_checkpoints/, and --rm takes a run of rm_checkpoints/\n"
        "Hint: pass a run name from rm_checkpoints/ (or STAGE/NAME), or a directory holding model_<step>.pt + "
        "meta_<step>.json\n"
    )
    policy = ws_dir.resolve() / "sft_checkpoints" / "uniform"
    result = with_rm(str(policy))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: --rm {policy}: not a kat reward-model checkpoint (it is a kat policy) ({policy}/meta_000002.json)\n"
        "Hint: pass a directory written by `kat train rm` (e.g. rm_checkpoints/uniform)\n"
    )
    stale = tmp_path / "other_rm"
    shutil.copytree(ws_dir / "rm_checkpoints" / "uniform", stale)
    meta_path = stale / "meta_000003.json"
    meta = json.loads(meta_path.read_text())
    meta["inputs"]["data/pairs_all.jsonl"] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    result = with_rm(str(stale))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: --rm {stale} was trained on another version of data/pairs_all.jsonl, so its rewards (and its "
        f"held-out prompts) belong to other pairs ({meta_path})\n"
        "Hint: retrain it with `kat train rm --name other_rm` on the current pairs\n"
    )
    from katcli.model.checkpoint import save_checkpoint
    from katcli.model.gpt import GPT, GPTConfig

    other = GPT(GPTConfig.from_depth(1, vocab_size=77, sequence_len=64))
    ref = tmp_path / "ref"
    save_checkpoint(ref, 1, other.state_dict(), {"kind": "kat-policy", "model_config": other.config.to_dict()}, None)
    result = with_rm("uniform", "--ref", str(ref), "--beta", "0.1")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: --ref has 77 token ids but the policy has 300 ({ref}/meta_000001.json)\n"
        "Hint: the reference's log-probs are compared token by token with the policy's: pass a --ref with the "
        "policy's vocabulary (e.g. the --init model, the default)\n"
    )


@pytest.mark.parametrize("command", ["rm", "sft", "dpo", "grpo"])
def test_help_states_the_learning_rates_the_command_uses(kat, command, monkeypatch):
    # `kat train grpo --help` said "default 2e-5 with --init, 1e-3 from scratch"; GRPO uses 1e-6 and 1e-4.
    import re

    from katcli.pipeline.train_config import TrainConfig
    from katcli.pipeline.train_grpo import TrainGRPOConfig

    cfg = TrainGRPOConfig if command == "grpo" else TrainConfig
    monkeypatch.setenv("COLUMNS", "400")
    out = " ".join(kat("train", command, "--help").stdout.split())
    lr = re.search(r"--lr LR Peak learning rate \(default (\S+) with --init, (\S+) from scratch[;)]", out)
    assert lr is not None, out
    assert (float(lr.group(1)), float(lr.group(2))) == (cfg.LR_INIT, cfg.LR_SCRATCH)


def test_without_init_grpo_starts_from_the_only_sft_run_as_dpo_does(kat, ws_dir, trained):
    # `kat train grpo --rm uniform` beside sft/uniform trained a random depth-4 GPT instead (RL from noise); DPO
    # already defaulted to the workspace's only SFT run.
    args = [a for a in TINY if a not in ("--init", "sft/uniform")]
    result = kat("train", "grpo", *args, "--name", "plain")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "trained from scratch" not in result.stdout
    meta = json.loads(next((ws_dir / "grpo_checkpoints" / "plain").glob("meta_*.json")).read_text())
    assert meta["init"]["path"] == "sft_checkpoints/uniform" and meta["config"]["init"] == "sft/uniform"
    shutil.copytree(ws_dir / "sft_checkpoints" / "uniform", ws_dir / "sft_checkpoints" / "other")
    result = kat("train", "grpo", *args, "--name", "two")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-2:] == [
        "Error: --init is needed: the workspace has 2 policies to start from (sft/other, sft/uniform)",
        "Hint: pick one, e.g. --init sft/other",
    ]
