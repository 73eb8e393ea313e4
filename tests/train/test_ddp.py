"""Two gloo processes under torchrun train one reward model / DPO policy; only rank 0 writes, one checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from rmkit import free_port, make_workspace, planted_pairs

from katcli.workspace import Manifest


def _torchrun(ws, *args: str) -> subprocess.CompletedProcess:
    """`kat -w WS ARGS…` under torchrun with two gloo processes of one thread each; asserts it succeeded."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
        f"--master_port={free_port()}", "-m", "katcli", "-w", str(ws.root), *args,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_torchrun_two_processes_write_one_checkpoint(tmp_path):
    ws = make_workspace(tmp_path / "ws", planted_pairs(80))
    proc = _torchrun(
        ws, "train", "rm", "--name", "ddp", "--density-aware", "--depth", "1", "--max-steps", "4", "--batch-size", "8",
        "--max-len", "64", "--val-ratio", "0.2", "--device", "cpu", "--eval-every", "2", "--save-every", "2",
    )
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


@pytest.mark.slow
def test_torchrun_two_processes_train_dpo_with_one_shared_reference_pass(tmp_path):
    import numpy as np
    import torch

    from katcli.model.tokenizer import Tokenizer
    from katcli.pipeline.train_sft import run_train_sft, tiny_sft_config
    from katcli.train.inputs import read_pairs
    from katcli.train.ref_cache import RefCacheKey, load_ref_logps
    from katcli.train.run_dir import load_gpt
    from katcli.train.seq_scoring import reply_logprobs
    from katcli.train.sequences import encode_pairs

    ws = make_workspace(tmp_path / "ws", planted_pairs(80))
    run_train_sft(ws, tiny_sft_config(max_steps=4, max_len=64))
    proc = _torchrun(
        ws, "train", "dpo", "--name", "ddp", "--density-aware", "--max-steps", "4", "--batch-size", "8",
        "--max-len", "64", "--lr", "1e-3", "--val-ratio", "0.2", "--device", "cpu", "--eval-every", "2",
        "--save-every", "2",
    )
    run_dir = ws.abs("dpo_checkpoints/ddp")
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "meta_000004.json", "metrics.jsonl", "model_000004.pt", "optim_000004.pt", "ref_logps.json", "ref_logps.npy",
        "tokenizer.json",
    ]
    assert proc.stdout.count("Trained 4 steps on cpu × 2") == 1
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "type" not in x] == [1, 2, 3, 4]
    assert all(x["pairs"] == 8 for x in lines if "type" not in x)
    assert [x["step"] for x in lines if x.get("type") == "eval"] == [2, 4]
    # The two ranks each computed half of the reference batches; the merged cache is the single-process result.
    meta = json.loads((run_dir / "meta_000004.json").read_text())
    cached = load_ref_logps(run_dir, RefCacheKey(**meta["ref_cache"]["key"])).logps
    tok = Tokenizer.load(run_dir / "tokenizer.json")
    pairs = read_pairs(ws.abs("data/pairs_all.jsonl"))
    enc = encode_pairs(tok, [(p.messages, p.chosen, p.rejected) for p in pairs], max_len=64, max_response_len=32)
    sums, _ = reply_logprobs(load_gpt(ws.abs("sft_checkpoints/uniform"))[0], enc, np.arange(len(enc)), batch_size=8,
                             pad_id=tok.bos_token_id, device=torch.device("cpu"))
    assert np.array_equal(cached.chosen, sums[:, 0]) and np.array_equal(cached.rejected, sums[:, 1])
    assert Manifest.load(ws.manifest_path).runs["dpo/ddp"].stats["world_size"] == 2
