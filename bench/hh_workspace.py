"""The benchmarks' real-data workspace: the 1000 HH-RLHF rows of `../shared` through kat's own commands.

`hh_workspace(root)` lays the rows out as a hub-style mirror, then runs `kat pairs download --from`, `kat prefixes`
and `kat train tokenizer`, so a bench trains on exactly what a user's workspace would hold. `kat(ws, …)` runs one
kat command (offline), on one process or under torchrun. Benches import this by name (they run from bench/).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

HH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test-first1000.jsonl.gz"


def kat(ws: Path, *args: str, processes: int = 1) -> float:
    """Run `kat -q -w WS ARGS…` (under torchrun with `processes` > 1, one thread each); its wall seconds."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    env["HF_HUB_OFFLINE"] = "1"
    cmd = [sys.executable, "-m", "katcli", "-q", "-w", str(ws), *args]
    if processes > 1:
        env["OMP_NUM_THREADS"] = "1"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
               "--master_addr=127.0.0.1", f"--master_port={port}", *cmd[1:]]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def hh_workspace(root: Path, *, vocab_size: int = 8192) -> Path:
    """A workspace under `root` with the HH pairs, their prefixes and a kat tokenizer."""
    mirror = root / "mirror" / "Anthropic" / "hh-rlhf" / "harmless-base"
    mirror.mkdir(parents=True)
    shutil.copy(HH, mirror / "test.jsonl.gz")
    ws = root / "ws"
    kat(ws, "pairs", "download", "--source", "hh", "--from", str(root / "mirror"), "--budget", "1000")
    kat(ws, "prefixes")
    kat(ws, "train", "tokenizer", "--vocab-size", str(vocab_size))
    return ws
