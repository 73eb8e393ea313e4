"""`--fsdp` against DDP: memory held per process and training throughput, two torchrun processes; prints ONE JSON.

Imports the 1000 real HH-RLHF rows of `../shared` (as `bench_hf_minilm_hh.py` does), builds prefixes and a kat
tokenizer, then trains the same SFT run three times — one process, two processes with DDP (the baseline), two with
`--fsdp` — with the same flags, seed and global batch. Reported per run: `state_mib_per_process` (parameters +
gradients + AdamW state that one process holds, from the run's manifest stats), tokens/s, and the final step's
loss; ratios compare FSDP with DDP. On CPU (gloo) FSDP's all-gathers and reduce-scatters are pure overhead, so
expect it slower than DDP here; the memory ratio is what it is for. Exits 0 with {"skipped": …} without ../shared.

    python bench/bench_fsdp.py [--depth 4] [--steps 12] [--batch 16] [--max-len 256]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from hh_workspace import HH, hh_workspace, kat


def train(ws: Path, name: str, a: argparse.Namespace, *, processes: int, extra: tuple[str, ...] = ()) -> dict:
    from katcli.workspace import Manifest

    wall = kat(ws, "train", "sft", "--name", name, "--depth", str(a.depth), "--max-steps", str(a.steps),
               "--batch-size", str(a.batch), "--max-len", str(a.max_len), "--val-ratio", "0.2", "--seed", "0",
               "--eval-every", "0", "--save-every", "0", "--device", "cpu", "--threads", "1", *extra,
               processes=processes)
    stats = Manifest.load(ws / "manifest.json").runs[f"sft/{name}"].stats
    lines = (ws / "sft_checkpoints" / name / "metrics.jsonl").read_text().splitlines()
    last = [json.loads(x) for x in lines if '"type"' not in x][-1]
    return {"processes": processes, "state_mib_per_process": stats["state_mib_per_process"],
            "tokens_per_s": stats["tokens_per_s"], "final_loss": last["loss"], "wall_s": round(wall, 1)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-len", type=int, default=256)
    a = p.parse_args()
    if not HH.is_file():
        print(json.dumps({"skipped": f"{HH} not found"}))
        return
    root = Path(tempfile.mkdtemp(prefix="kat-fsdp-"))
    try:
        ws = hh_workspace(root)
        one = train(ws, "one", a, processes=1)
        ddp = train(ws, "ddp", a, processes=2)
        fsdp = train(ws, "fsdp", a, processes=2, extra=("--fsdp",))
        out = {
            "bench": "fsdp", "rows": HH.name, "depth": a.depth, "steps": a.steps, "batch": a.batch,
            "max_len": a.max_len, "one_process": one, "ddp": ddp, "fsdp": fsdp,
            "state_per_process_ratio_fsdp_vs_ddp": round(fsdp["state_mib_per_process"] / ddp["state_mib_per_process"], 3),
            "tokens_per_s_ratio_fsdp_vs_ddp": round(fsdp["tokens_per_s"] / ddp["tokens_per_s"], 3),
            "final_loss_abs_diff_fsdp_vs_ddp": abs(fsdp["final_loss"] - ddp["final_loss"]),
            "note": "CPU, gloo, 1 thread per process, 2 shared busy cores: timings are noisy",
        }
        print(json.dumps(out))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
