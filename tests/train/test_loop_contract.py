"""What the one training loop promises every objective, checked with a toy objective (tests/train/loopkit.py).

Bit-exact resume (weights, optimizer file and metrics file, byte for byte), a global batch that is the mean over
its items for any micro-batch split, and under torchrun: each item of a global batch used by exactly one rank, and
exactly one checkpoint written, by rank 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from loopkit import ToyObjective, run_toy
from torchrunkit import free_port

from katcli.train.ddp import DistContext
from katcli.train.loop import LoopSettings, TrainingLoop
from katcli.train.sampler import WeightedSampler, item_probabilities


class _Stop(Exception):
    pass


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_resume_is_byte_identical_in_every_file(tmp_path):
    straight, broken = tmp_path / "a", tmp_path / "b"
    run_toy(straight)

    def stop(record):
        if record["step"] == 5:
            raise _Stop

    with pytest.raises(_Stop):
        run_toy(broken, on_step=stop)
    assert sorted(p.name for p in broken.iterdir()) == ["meta_000003.json", "metrics.jsonl", "model_000003.pt",
                                                        "optim_000003.pt"]
    run_toy(broken, resume=True)
    assert _files(straight) == _files(broken)
    lines = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "type" not in x] == list(range(1, 11))
    assert [x["step"] for x in lines if x.get("type") == "eval"] == [4, 8, 10]


def test_the_gradient_is_the_mean_over_the_global_batch_for_any_micro_batch_split():
    probs = item_probabilities([f"p{i}" for i in range(64)])
    for micro in (1, 3, 8):
        obj = ToyObjective(dropout=0.0)
        sampler = WeightedSampler(probs, np.zeros(64), seed=2, batch_size=8)
        settings = LoopSettings(max_steps=1, micro_batch_size=micro, lr=0.0, warmup_steps=0, grad_clip=0.0)
        TrainingLoop(obj, np.arange(64), sampler, settings, dist=DistContext(), out_dir=None).train()
        batch = torch.from_numpy(sampler.batch(0).astype(np.int64))
        reference = ToyObjective(dropout=0.0)
        (reference.module(reference.x[batch]).squeeze(-1) - reference.y[batch]).square().mean().backward()
        for got, want in zip(obj.module.parameters(), reference.module.parameters()):
            assert torch.allclose(got.grad, want.grad, atol=1e-6), micro


_SCRIPT = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, {kit!r})
import torch
from loopkit import run_toy
from katcli.train.ddp import init_distributed
torch.set_num_threads(1)
dist = init_distributed("cpu")
out = Path({out!r})
obj, outcome = run_toy(out if dist.is_main else None, max_steps=6, save_every=3, batch_size=8, micro=2, dist=dist)
Path({seen!r}.format(rank=dist.rank)).write_text(json.dumps(obj.seen))
dist.shutdown()
"""


@pytest.mark.slow
def test_torchrun_shards_each_item_once_and_only_rank_0_writes(tmp_path):
    out = tmp_path / "run"
    script = tmp_path / "toy_ddp.py"
    seen = str(tmp_path / "seen_{rank}.json")
    script.write_text(_SCRIPT.format(kit=str(Path(__file__).parent), out=str(out), seen=seen))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", str(script)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["meta_000006.json", "metrics.jsonl", "model_000006.pt",
                                                     "optim_000006.pt"]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if "type" not in x]
    assert [x["items"] for x in lines] == [8] * 6  # the global batch, summed over both ranks
    per_rank = [dict((s, items) for s, items in json.loads((tmp_path / f"seen_{r}.json").read_text()))
                for r in (0, 1)]
    probs = item_probabilities([f"p{i % 16}" for i in range(64)])
    sampler = WeightedSampler(probs, np.arange(64) % 7, seed=1, batch_size=8, pool_batches=4)
    for step in range(6):
        global_batch = Counter(int(i) for i in sampler.batch(step))
        assert Counter(per_rank[0][step]) + Counter(per_rank[1][step]) == global_batch
        assert len(per_rank[0][step]) == len(per_rank[1][step]) == 4
