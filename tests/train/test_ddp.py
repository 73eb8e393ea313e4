"""Two gloo processes under torchrun train one reward model; only rank 0 writes, exactly one checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from rmkit import free_port, make_workspace, planted_pairs

from katcli.workspace import Manifest


@pytest.mark.slow
def test_torchrun_two_processes_write_one_checkpoint(tmp_path):
    ws = make_workspace(tmp_path / "ws", planted_pairs(80))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
        f"--master_port={free_port()}", "-m", "katcli", "-w", str(ws.root), "train", "rm", "--name", "ddp",
        "--density-aware", "--depth", "1", "--max-steps", "4", "--batch-size", "8", "--max-len", "64",
        "--val-ratio", "0.2", "--device", "cpu", "--eval-every", "2", "--save-every", "2",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = ws.abs("rm_checkpoints/ddp")
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "meta_000004.json", "metrics.jsonl", "model_000004.pt", "optim_000004.pt", "tokenizer.json",
    ]
    assert proc.stdout.count("Trained 4 steps on cpu × 2") == 1  # rank 1 prints nothing
    meta = json.loads((run_dir / "meta_000004.json").read_text())
    assert meta["training"]["world_size"] == 2
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "type" not in x] == [1, 2, 3, 4]  # one line per step, not per rank
    assert all(x["pairs"] == 8 for x in lines if "type" not in x)  # the global batch, summed over ranks
    assert [x["step"] for x in lines if x.get("type") == "eval"] == [2, 4]
    run = Manifest.load(ws.manifest_path).runs["rm/ddp"]
    assert run.stats["world_size"] == 2 and run.stats["step"] == 4
