"""`kat train sft`: flags → config, the summary it prints, and its errors (exact messages, exit codes)."""

from __future__ import annotations

import json

import rmkit
from modelkit import one_torch_thread  # noqa: F401  (autouse fixture: tiny models run on one thread)

TINY = ["--depth", "1", "--max-steps", "3", "--batch-size", "8", "--max-len", "64", "--val-ratio", "0.2",
        "--device", "cpu", "--threads", "1"]


def test_train_sft_prints_sampling_training_and_heldout_nll(kat, ws_dir):
    rmkit.make_workspace(ws_dir, rmkit.templated_pairs(60))
    result = kat("train", "sft", *TINY, "--density-aware")
    assert result.exit_code == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Note: trained from scratch (--depth 1): fine for trying the pipeline, but real policies start from a " \
           "pretrained or SFT model (--init DIR, e.g. one from `kat import nanochat`)" in out
    assert "Sampling: density-aware (per-prompt) over " in out and "effective sample size" in out
    assert "Trained 3 steps on cpu × 1: " in out
    assert "Held-out reply NLL per token (" in out
    for row in ("overall", "src-a", "src-b", "Q1 commonest", "Q5 rarest"):
        assert row in out
    assert out.rstrip().endswith(f"Wrote {ws_dir.resolve()}/sft_checkpoints/density")
    status = json.loads(kat("status", "--json").stdout)
    row = next(r for r in status["stages"] if r["key"] == "sft/density")
    assert row["state"] == "ok"
    assert row["last_run"]["command"].endswith("train sft " + " ".join(TINY) + " --density-aware")


def test_missing_upstream_bad_init_and_nothing_to_resume(kat, ws_dir):
    result = kat("train", "sft", *TINY)
    assert result.exit_code == 1
    assert result.stderr == "Error: data/pairs_all.jsonl is missing\nHint: run `kat pairs download` first\n"
    rmkit.make_workspace(ws_dir, rmkit.templated_pairs(30), with_weights=False)
    result = kat("train", "sft", *TINY, "--resume")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: nothing to resume: sft_checkpoints/uniform/ has no checkpoint\nHint: drop --resume to start a new run\n"
    )
    result = kat("train", "sft", "--init", "nope", "--max-steps", "1")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: --init nope: no such run or checkpoint directory\n"
        "Hint: pass a run name from sft_checkpoints/, dpo_checkpoints/, grpo_checkpoints/, kto_checkpoints/, "
        "ppo_checkpoints/, models/, rm_checkpoints/ "
        "(or STAGE/NAME), or a directory holding model_<step>.pt + meta_<step>.json\n"
    )


def test_fsdp_without_torchrun_is_an_error_naming_the_launcher(kat, ws_dir):
    rmkit.make_workspace(ws_dir, rmkit.templated_pairs(30), with_weights=False)
    result = kat("train", "sft", *TINY, "--fsdp")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: --fsdp shards the model over torchrun's processes, but this is a single process\n"
        "Hint: launch it as `torchrun --nproc_per_node=N -m katcli train sft … --fsdp`, or drop --fsdp\n"
    )
    assert not (ws_dir / "sft_checkpoints").exists()
