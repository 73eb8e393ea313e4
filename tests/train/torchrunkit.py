"""Test kit: `kat` under torchrun with two gloo processes of one thread each, optionally stopped after a save.

`torchrun(ws, *args)` runs `kat -w WS ARGS…` on two CPU processes and returns the finished process (asserting it
succeeded unless `check=False`). With `stop_after_save=N` the processes run this file instead of `-m katcli`: it
makes the loop raise KeyboardInterrupt right after it saved step N — the Ctrl-C a resume test needs, inside
processes a test cannot monkeypatch.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun(ws, *args: str, stop_after_save: int | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    env["OMP_NUM_THREADS"] = "1"
    entry = ["-m", "katcli"] if stop_after_save is None else [__file__, str(stop_after_save)]
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
        f"--master_port={free_port()}", *entry, "-w", str(ws.root), *args,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _stop_after_save(step: int) -> None:
    import katcli.train.loop as loop_mod

    real_save = loop_mod.TrainingLoop._save

    def save_then_stop(self, at, report):
        files = real_save(self, at, report)
        if at == step:
            raise KeyboardInterrupt
        return files

    loop_mod.TrainingLoop._save = save_then_stop


if __name__ == "__main__":
    _stop_after_save(int(sys.argv.pop(1)))
    from katcli.__main__ import main

    sys.argv[0] = "kat"
    main()
