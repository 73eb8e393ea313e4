"""`bench/device_check.sh --dry-run`: lists every command the GPU check would run, on any machine, and exits 0."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import REPO

SCRIPT = REPO / "bench" / "device_check.sh"


def test_the_device_check_script_parses_and_its_dry_run_lists_every_cuda_path(tmp_path):
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "OUT": str(out)})
    assert proc.returncode == 0, proc.stderr
    assert not out.exists()  # a dry run writes nothing
    steps = dict(line.split(maxsplit=1) for line in proc.stdout.splitlines())
    for stage in ("rm", "sft", "dpo", "grpo"):
        assert "--device cuda" in steps[f"train_{stage}"], stage
    assert "embed --device cuda" in steps["embed_cuda"] and "train tokenizer" in steps["tokenizer"]
    assert "--resume" in steps["train_sft_resume"] and "--resume" in steps["train_grpo_resume"]
    assert "--device cpu" in steps["train_dpo_cpu"] and "computed" in steps["check_cache_cpu"]
    assert "--batch-size 8" in steps["eval_rm_b8"] and "--batch-size 32" in steps["eval_rm_b32"]
    assert "--batch-size 4" in steps["eval_policy_b4"] and "--batch-size 16" in steps["eval_policy_b16"]
    assert "--init hf:" in steps["train_sft_hf"] and "tiny-llama" in steps["hf_tiny_llama"]
    assert "bench_rollout.py --device cuda --dtype bf16" in steps["bench_rollout"]
    assert "--dtype fp16" in steps["train_sft_fp16"] and "--dtype fp32" in steps["train_sft_fp32_tf32"]
    assert "--nproc_per_node=2" in steps["train_sft_ddp"] and "--fsdp" in steps["train_sft_fsdp"]
    assert "cpu-load" in steps["check_cpu_load"] and "summary" in steps["summary"]


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_the_device_check_script_passes_shellcheck():
    proc = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
