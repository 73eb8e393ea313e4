"""Two gloo processes under torchrun train one reward model / DPO policy; only rank 0 writes, one checkpoint."""

from __future__ import annotations

import json

import pytest
from rmkit import make_workspace, planted_pairs
from torchrunkit import torchrun

from katcli.workspace import Manifest


@pytest.mark.slow
def test_torchrun_two_processes_write_one_checkpoint(tmp_path):
    ws = make_workspace(tmp_path / "ws", planted_pairs(80))
    proc = torchrun(
        ws, "train", "rm", "--name", "ddp", "--density-aware", "--depth", "1", "--max-steps", "4", "--batch-size", "8",
        "--max-len", "64", "--val-ratio", "0.2", "--device", "cpu", "--eval-every", "2", "--save-every", "2",
    )
    run_dir = ws.abs("rm_checkpoints/ddp")
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "meta_000004.json", "metrics.jsonl", "model_000004.pt", "optim_000004.pt", "tokenizer.json",
    ]
    assert proc.stdout.count("Trained 4 steps on cpu × 2") == 1  # rank 1 prints nothing
    assert "Warning" not in proc.stderr, proc.stderr[-2000:]  # torch's deprecation notes are not the user's business
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
    from katcli.train.run_dir import load_run
    from katcli.train.seq_scoring import summed_reply_logprobs
    from katcli.train.sequences import encode_pairs

    ws = make_workspace(tmp_path / "ws", planted_pairs(80))
    run_train_sft(ws, tiny_sft_config(max_steps=4, max_len=64))
    proc = torchrun(
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
    sums, _ = summed_reply_logprobs(load_run(ws.abs("sft_checkpoints/uniform")).model, enc, np.arange(len(enc)), batch_size=8,
                             pad_id=tok.bos_token_id, device=torch.device("cpu"))
    assert np.array_equal(cached.chosen, sums[:, 0]) and np.array_equal(cached.rejected, sums[:, 1])
    assert Manifest.load(ws.manifest_path).runs["dpo/ddp"].stats["world_size"] == 2
    # --fsdp: the same steps (policy sharded; the reference cache is the one above, reused by its key).
    torchrun(
        ws, "train", "dpo", "--name", "fsdp", "--density-aware", "--max-steps", "4", "--batch-size", "8",
        "--max-len", "64", "--lr", "1e-3", "--val-ratio", "0.2", "--device", "cpu", "--eval-every", "2",
        "--save-every", "2", "--fsdp",
    )
    sharded = [json.loads(x) for x in ws.abs("dpo_checkpoints/fsdp/metrics.jsonl").read_text().splitlines()]
    assert len(sharded) == len(lines)
    for a, b in zip(lines, sharded, strict=True):
        for key in ("loss", "grad_norm", "rewards/margins"):
            if key in a:
                assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
        if a.get("type") == "eval":
            assert a["overall"] == b["overall"]  # held-out accuracy: the same pairs right
