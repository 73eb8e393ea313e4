"""`kat train rm`: flags → config, the summary it prints, and its errors (exact messages, exit codes)."""

from __future__ import annotations


import rmkit
from modelkit import one_torch_thread  # noqa: F401  (autouse fixture: tiny models run on one thread)




TINY = ["--depth", "1", "--max-steps", "3", "--batch-size", "8", "--max-len", "64", "--val-ratio", "0.2",
        "--device", "cpu", "--threads", "1"]


def test_train_rm_prints_sampling_training_and_heldout_summary(kat, ws_dir):
    kit = rmkit
    kit.make_workspace(ws_dir, kit.planted_pairs(60))
    result = kat("train", "rm", *TINY, "--density-aware")
    assert result.exit_code == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Note: trained from scratch (--depth 1): fine for trying the pipeline, but real reward models start " \
           "from a pretrained or SFT model (--init DIR, e.g. one from `kat import nanochat`)" in out
    assert "Sampling: density-aware (per-prompt) over " in out and "effective sample size" in out
    assert "Trained 3 steps on cpu × 1: " in out and "pad fraction" in out
    assert "Held-out accuracy, 95% Wilson interval (" in out
    for row in ("overall", "src-a", "src-b", "Q1 commonest", "Q5 rarest"):
        assert row in out
    assert out.rstrip().endswith(f"Wrote {ws_dir.resolve()}/rm_checkpoints/density")
    assert (ws_dir / "rm_checkpoints" / "density" / "model_000003.pt").is_file()
    status = kat("status", "--json")
    assert '"key": "rm/density"' in status.stdout


HELP_HINT = "Hint: `kat train rm --help` lists each flag with the values it accepts"


def test_flag_errors_name_the_flag(kat, ws_dir):
    result = kat("train", "rm", "--pair-weighting", "per-pair")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["Error: --pair-weighting only applies with --density-aware", HELP_HINT]
    result = kat("train", "rm", "--val-ratio", "1")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["Error: --val-ratio must be between 0 and 1 (exclusive)", HELP_HINT]


def test_missing_upstream_and_nothing_to_resume(kat, ws_dir):
    result = kat("train", "rm", *TINY)
    assert result.exit_code == 1
    assert result.stderr == "Error: data/pairs_all.jsonl is missing\nHint: run `kat pairs download` first\n"
    kit = rmkit
    kit.make_workspace(ws_dir, kit.planted_pairs(30), with_weights=False)
    result = kat("train", "rm", *TINY, "--resume")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: nothing to resume: rm_checkpoints/uniform/ has no checkpoint\nHint: drop --resume to start a new run\n"
    )


def test_seeds_train_one_replicate_per_seed_on_one_heldout_set(kat, ws_dir):
    import json

    rmkit.make_workspace(ws_dir, rmkit.planted_pairs(40), with_weights=False)
    result = kat("train", "rm", *TINY, "--max-steps", "1", "--seeds", "2")
    assert result.exit_code == 0, result.stdout + result.stderr
    metas = {}
    for seed in (0, 1):
        run = ws_dir / "rm_checkpoints" / f"uniform-s{seed}"
        assert f"Wrote {run.resolve()}" in result.stdout
        metas[seed] = json.loads(next(run.glob("meta_*.json")).read_text())
    assert [m["config"]["seed"] for m in metas.values()] == [0, 1]
    assert [m["config"]["name"] for m in metas.values()] == ["uniform-s0", "uniform-s1"]
    assert metas[0]["heldout"] == metas[1]["heldout"]  # same split seed: one held-out fingerprint
    bad = kat("train", "rm", *TINY, "--seeds", "1,1")
    assert bad.exit_code == 1
    assert bad.stderr == "Error: --seeds lists a seed twice (1,1)\nHint: e.g. --seeds 3 (seeds 0, 1, 2) or --seeds 0,4,7\n"
