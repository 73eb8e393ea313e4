"""What `--report-to tensorboard` costs `kat train rm`: wall-clock tokens/s with and without it, in one process.

The workspace is the built-in sample (pairs, prefixes, a 2048-token tokenizer). Runs alternate — plain, tracked,
plain, tracked, … (`--repeats` of each) — so drift in the shared machine's load hits both arms alike. Each run's
tokens/s is measured from the wall clock between the first and the last step's `on_step` callback, which the loop
calls after the step's `metrics.jsonl` line and its tracker event are written: it includes the tracker's per-step
cost (the loop's own `tokens_per_s` times the optimizer step only). The one-time start (importing tensorboard,
opening the event file) is not a per-token cost and is reported apart. The time inside the per-step tracker call
is also timed directly (`tracker_share_of_step_time`), a figure the machine's noise between runs does not blur. The tiniest reward model is the worst case:
its steps are the shortest. Prints one JSON object with the ratio tracked / plain (median over the pairs).

    python bench/bench_tracking.py [--steps 150] [--repeats 5] [--depth 1] [--batch 16] [--max-len 256]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


_IN_TRACKER = [0.0]  # seconds spent inside the loop's per-step tracker calls, this run


def _time_tracker_calls() -> None:
    """Time `Trackers.log_step` directly too: the per-step cost without the machine's noise between runs."""
    from katcli.train.tracking import Trackers

    real = Trackers.log_step

    def timed(self, record):
        t = time.perf_counter()
        real(self, record)
        _IN_TRACKER[0] += time.perf_counter() - t

    Trackers.log_step = timed


def _run(ws, cfg_kwargs: dict, name: str, report_to: tuple[str, ...]) -> dict:
    from katcli.pipeline.train_rm import TrainRMConfig, run_train_rm

    stamps: list[tuple[float, int]] = []
    _IN_TRACKER[0] = 0.0

    def on_step(record: dict) -> None:
        stamps.append((time.perf_counter(), int(record["tokens"])))

    t0 = time.perf_counter()
    result = run_train_rm(ws, TrainRMConfig(name=name, report_to=report_to, **cfg_kwargs), on_step=on_step)
    total = time.perf_counter() - t0
    wall = stamps[-1][0] - stamps[0][0]
    tokens = sum(n for _, n in stamps[1:])
    return {"wall_tokens_per_s": round(tokens / wall, 1), "loop_tokens_per_s": round(result.tokens_per_s, 1),
            "run_seconds": round(total, 2), "tracker_share_of_step_time": round(_IN_TRACKER[0] / wall, 5)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--depth", type=int, default=1)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()

    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        print(json.dumps({"skipped": "the tensorboard extra is not installed (pip install 'katcli[tensorboard]')"}))
        return
    from katcli.workspace import Workspace

    root = Path(tempfile.mkdtemp(prefix="kat-bench-tracking-"))
    try:
        base = [sys.executable, "-m", "katcli", "-q", "-w", str(root / "ws")]
        for step in (["pairs", "download", "--from", "sample"], ["prefixes"],
                     ["train", "tokenizer", "--vocab-size", "2048"]):
            subprocess.run([*base, *step], check=True)
        ws = Workspace(root / "ws")
        cfg = dict(depth=a.depth, max_steps=a.steps, batch_size=a.batch, max_len=a.max_len, lr=2e-3, val_ratio=0.2,
                   eval_every=0, save_every=0, device="cpu", threads=a.threads)
        _time_tracker_calls()
        _run(ws, cfg, "warmup", ())  # first-run costs (allocator, caches) hit neither arm
        plain, tracked = [], []
        for i in range(a.repeats):
            plain.append(_run(ws, cfg, f"plain-{i}", ()))
            tracked.append(_run(ws, cfg, f"tb-{i}", ("tensorboard",)))
        ratios = [t["wall_tokens_per_s"] / q["wall_tokens_per_s"] for q, t in zip(plain, tracked)]
        events = sum(1 for _ in (root / "ws" / "tracking" / "tensorboard").rglob("events.out.tfevents.*"))
        print(json.dumps({
            "bench": "tracking", "objective": "rm", "depth": a.depth, "steps": a.steps, "batch_pairs": a.batch,
            "max_len": a.max_len, "threads": a.threads, "repeats": a.repeats,
            "plain": plain, "tensorboard": tracked,
            "ratio_tensorboard_over_plain": round(statistics.median(ratios), 4),
            "ratios": [round(r, 4) for r in ratios],
            "tracker_share_of_step_time": statistics.median(t["tracker_share_of_step_time"] for t in tracked),
            "start_seconds_extra": round(statistics.median(t["run_seconds"] - q["run_seconds"]
                                                           for q, t in zip(plain, tracked)), 2),
            "event_files": events,
            "note": "2 shared CPU cores, busy with other agents' jobs: timings are noisy; interleaved to even it out",
        }))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
