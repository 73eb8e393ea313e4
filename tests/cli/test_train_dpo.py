"""`kat train dpo` from the command line: summary, refusals with exact messages, and DPO policies in `kat eval rm`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rmkit
from modelkit import one_torch_thread  # noqa: F401  (autouse fixture: tiny models run on one thread)

RUN = ("--max-steps", "12", "--batch-size", "16", "--max-len", "64", "--lr", "2e-3", "--val-ratio", "0.2",
       "--eval-every", "0", "--save-every", "0", "--device", "cpu", "--threads", "1")
TINY = (*RUN, "--beta", "0.5")


def _error(result) -> str:
    """stderr from the `Error:` line on (progress bars drawn before a late error come first)."""
    return result.stderr[result.stderr.index("Error: "):]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A workspace with the SFT policy `uniform` and the reward model `uniform` (same seed and held-out set)."""
    from katcli.pipeline.train_rm import run_train_rm, tiny_config
    from katcli.pipeline.train_sft import run_train_sft, tiny_sft_config

    root = tmp_path_factory.mktemp("dpows")
    ws = rmkit.make_workspace(root, rmkit.planted_pairs(100))
    run_train_sft(ws, tiny_sft_config(max_steps=20, max_len=64, lr=3e-3))
    run_train_rm(ws, tiny_config(max_steps=4, max_len=64, lr=3e-3))
    return root


@pytest.fixture(scope="module")
def trained(workspace):
    """The DPO run `uniform`, trained through the CLI from the only SFT run."""
    from typer.testing import CliRunner

    from katcli.cli.app import app

    result = CliRunner().invoke(
        app, ["-w", str(workspace), "train", "dpo", *TINY], catch_exceptions=False, env={"COLUMNS": "200"}
    )
    return workspace, result


def test_help_says_what_the_flags_do_and_that_depth_is_a_toy(kat):
    result = kat("train", "dpo", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for flag in ("--init", "--ref", "--beta", "--loss", "--label-smoothing", "--sft-weight", "--density-aware",
                 "--pair-weighting", "--resume", "--max-response-len"):
        assert flag in text, flag
    assert "a toy for trying the pipeline" in text
    assert "Example: kat -w ./exp train dpo" in text


def test_training_from_the_only_sft_run_prints_the_implicit_reward_table(trained):
    root, result = trained
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("Sampling: uniform over ") for line in lines)
    assert any(line.startswith("Trained 12 steps on cpu × 1: ") for line in lines)
    assert any(line.startswith("Held-out implicit-reward accuracy (h > 0), 95% Wilson interval") for line in lines)
    assert any(line.startswith("Mean held-out margin β·h: +") for line in lines)
    assert lines[-1] == f"Wrote {root / 'dpo_checkpoints' / 'uniform'}"
    assert "reference log-probs" in result.stderr  # the one-off reference pass has its own progress bar


def test_eval_rm_puts_a_dpo_policy_beside_a_reward_model(kat, trained):
    root, _ = trained
    result = kat("eval", "rm", "uniform", "dpo/uniform", "--json", "--threads", "1", workspace=root)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    rm, dpo = data["models"]
    assert (rm["name"], dpo["name"]) == ("uniform", "dpo/uniform")  # a bare name is the reward model's
    assert dpo["implicit_reward"] is True and dpo["beta"] == 0.5
    meta = json.loads((root / "dpo_checkpoints" / "uniform" / "meta_000012.json").read_text())
    assert dpo["overall"] == meta["eval"]["overall"]  # the same numbers training reported
    assert dpo["by_quintile"] == meta["eval"]["by_quintile"]
    assert data["comparisons"][0]["b"] == "dpo/uniform"
    table = kat("eval", "rm", "rm/uniform", "dpo/uniform", "--threads", "1", workspace=root)
    assert table.exit_code == 0, table.stderr
    assert "dpo/uniform" in table.stdout and "Δ" in table.stdout


def test_eval_rm_refuses_an_sft_policy(kat, workspace):
    result = kat("eval", "rm", str(workspace / "sft_checkpoints" / "uniform"), workspace=workspace)
    assert result.exit_code == 1
    meta = workspace / "sft_checkpoints" / "uniform" / "meta_000020.json"
    assert result.stderr == (
        f"Error: a sft policy has no reward to compare pairs with ({meta})\n"
        "Hint: pass a run of `kat train rm` or `kat train dpo` (a DPO policy is an implicit reward model)\n"
    )


def test_a_reward_model_as_init_or_ref_is_refused(kat, workspace):
    meta = workspace / "rm_checkpoints" / "uniform" / "meta_000004.json"
    hint = ("Hint: pass a policy: an SFT run (`kat train sft`), an imported model (`kat import nanochat`) "
            "or a directory holding one; a reward model scores replies but cannot generate them\n")
    for flag in ("--init", "--ref"):
        result = kat("train", "dpo", flag, "rm/uniform", *TINY, workspace=workspace)
        assert result.exit_code == 1
        assert result.stderr == f"Error: {flag} is a reward model, not a policy ({meta})\n" + hint


def test_a_ref_that_is_no_checkpoint_is_refused(kat, workspace, tmp_path):
    result = kat("train", "dpo", "--ref", str(tmp_path), *TINY, workspace=workspace)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: --ref: no model_<step>.pt checkpoint found ({tmp_path})\nHint: pass a policy")


def test_bad_loss_flags_are_refused_naming_the_flag(kat, workspace):
    result = kat("train", "dpo", "--loss", "hinge", "--label-smoothing", "0.1", *TINY, workspace=workspace)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: --label-smoothing only applies to --loss sigmoid or robust, not --loss hinge\n"
        "Hint: `kat train dpo --help` lists each flag with the values it accepts\n"
    )
    result = kat("train", "dpo", "--beta", "0", *RUN, workspace=workspace)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: --beta must be a positive number (got 0.0)\nHint: ")


def test_no_policy_to_start_from(kat, tmp_path):
    rmkit.make_workspace(tmp_path / "empty", rmkit.planted_pairs(10))
    result = kat("train", "dpo", *TINY, workspace=tmp_path / "empty")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: --init is needed: the workspace has no SFT run or imported model to start the policy from\n"
        "Hint: run `kat train sft` first (or `kat import nanochat`), or pass --init DIR\n"
    )


def test_a_modified_cache_is_an_error_naming_the_file(kat, trained):
    root, _ = trained
    array = root / "dpo_checkpoints" / "uniform" / "ref_logps.npy"
    original = array.read_bytes()
    try:
        rec = np.load(array, allow_pickle=False)
        rec["rejected_logp"][3] -= 0.5
        np.save(array, rec, allow_pickle=False)
        result = kat("train", "dpo", *TINY, workspace=root)
        assert result.exit_code == 1
        key = array.with_name("ref_logps.json")
        assert _error(result) == (
            "Error: the cached reference log-probs do not match the checksum recorded in ref_logps.json: the file "
            f"was modified ({array})\n"
            f"Hint: delete {array} and {key}, then re-run the same command: kat recomputes them from the reference "
            "model\n"
        )
    finally:
        array.write_bytes(original)


def test_status_shows_the_dpo_run(kat, trained):
    root, _ = trained
    data = json.loads(kat("status", "--json", workspace=root).stdout)
    (stage,) = [s for s in data["stages"] if s["key"] == "dpo/uniform"]
    assert stage["state"] == "ok" and stage["title"] == "DPO policy (uniform)"
    assert {a["path"] for a in stage["artifacts"]} >= {
        "dpo_checkpoints/uniform/ref_logps.npy", "dpo_checkpoints/uniform/ref_logps.json",
    }


def test_a_reference_free_loss_runs_no_reference_pass_and_says_which_reward_it_reads(kat, workspace):
    result = kat("train", "dpo", "--name", "simpo", "--loss", "simpo", *RUN, "--beta", "2", workspace=workspace)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("Held-out implicit-reward accuracy (β·log π/|y|, chosen > rejected), 95% Wilson")
               for line in lines)
    assert any(line.startswith("Mean held-out margin β·Δ(log π/|y|): ") for line in lines)
    assert "reference log-probs" not in result.stderr  # no reference pass at all
    assert not (workspace / "dpo_checkpoints" / "simpo" / "ref_logps.npy").exists()
    refused = kat("train", "dpo", "--name", "simpo", "--loss", "orpo", "--ref", "sft/uniform", *RUN,
                  workspace=workspace)
    assert refused.exit_code == 1
    assert refused.stderr == (
        "Error: --ref is not used by --loss orpo: it is reference-free (no reference model, no cached reference "
        "log-probs)\nHint: drop --ref, or choose a reference-based --loss such as sigmoid\n"
    )


def test_kto_and_ppo_train_from_the_command_line(kat, workspace):
    kto = kat("train", "kto", *TINY, workspace=workspace)
    assert kto.exit_code == 0, kto.stderr
    assert any(line.startswith("Held-out implicit-reward accuracy (h > 0), 95% Wilson interval")
               for line in kto.stdout.splitlines())
    assert kto.stdout.splitlines()[-1] == f"Wrote {workspace / 'kto_checkpoints' / 'uniform'}"
    ev = kat("eval", "rm", "uniform", "kto/uniform", "--json", "--threads", "1", workspace=workspace)
    assert ev.exit_code == 0, ev.stderr
    assert [m["name"] for m in json.loads(ev.stdout)["models"]] == ["uniform", "kto/uniform"]
    ppo = kat("train", "ppo", "--rm", "uniform", "--max-steps", "2", "--prompts-per-step", "8", "--max-new-tokens",
              "8", "--max-len", "64", "--val-ratio", "0.2", "--eval-prompts", "4", "--eval-every", "0",
              "--save-every", "0", "--device", "cpu", "--threads", "1", "--ppo-epochs", "2", workspace=workspace)
    assert ppo.exit_code == 0, ppo.stderr
    out = ppo.stdout.splitlines()
    assert any(line.startswith("Held-out reward (4 prompts)") for line in out)
    assert out[-1] == f"Wrote {workspace / 'ppo_checkpoints' / 'uniform'}"
