"""The first pretrained reward model on a CPU: the bundled all-MiniLM-L6-v2 against a from-scratch kat GPT on real HH.

Imports the 1000 real HH-RLHF rows of `../shared` (harmless-base test, first 1000) through `kat pairs download
--from` (a mirror in the hub's layout), builds prefixes and a kat tokenizer, then trains two reward models on the
same prompt split (`--seed 0 --val-ratio 0.2`) with the same steps, batch and `--max-len`:
`--init hf:sentence-transformers/all-MiniLM-L6-v2` (bundled copy, sha256-checked; 6 layers × 384) and `--depth 6`
(kat's GPT of the same width and depth, from scratch). Prints one JSON object: held-out accuracies with 95% Wilson
intervals, parameters, tokens/s, wall seconds; the ratio compares MiniLM to the GPT baseline. Exits 0 with
{"skipped": …} when ../shared is absent.

    python bench/bench_hf_minilm_hh.py [--steps 40] [--batch 16] [--max-len 128] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from hh_workspace import HH, hh_workspace, kat


def train(ws: Path, name: str, model: list[str], a: argparse.Namespace) -> dict:
    from katcli.workspace import Manifest

    t0 = time.perf_counter()
    kat(ws, "train", "rm", "--name", name, *model, "--max-steps", str(a.steps), "--batch-size", str(a.batch),
        "--max-len", str(a.max_len), "--val-ratio", "0.2", "--seed", "0", "--eval-every", "0", "--save-every", "0",
        "--device", "cpu", "--threads", str(a.threads))
    wall = time.perf_counter() - t0
    stats = Manifest.load(ws / "manifest.json").runs[f"rm/{name}"].stats
    meta = json.loads(sorted((ws / "rm_checkpoints" / name).glob("meta_*.json"))[-1].read_text())
    acc = meta["eval"]["overall"]
    return {"accuracy": acc, "tokens_per_s": stats["tokens_per_s"], "wall_s": round(wall, 1),
            "base_model": stats.get("base_model"), "model_config": meta["model_config"]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=5e-5, help="MiniLM's learning rate (the GPT uses kat's 1e-3)")
    a = p.parse_args()
    if not HH.is_file():
        print(json.dumps({"skipped": f"{HH} not found"}))
        return
    root = Path(tempfile.mkdtemp(prefix="kat-minilm-hh-"))
    try:
        ws = hh_workspace(root)
        minilm = train(ws, "minilm", ["--init", "hf:sentence-transformers/all-MiniLM-L6-v2", "--lr", str(a.lr)], a)
        gpt = train(ws, "gpt-d6", ["--depth", "6"], a)
        out = {
            "bench": "hf_minilm_hh", "rows": str(HH.name), "steps": a.steps, "batch_pairs": a.batch,
            "max_len": a.max_len, "threads": a.threads, "split": "seed 0, val-ratio 0.2 (by prompt)",
            "minilm": minilm, "gpt_depth6_scratch": gpt,
            "accuracy_minus_baseline": round(minilm["accuracy"]["accuracy"] - gpt["accuracy"]["accuracy"], 4),
            "tokens_per_s_ratio_vs_baseline": round(minilm["tokens_per_s"] / gpt["tokens_per_s"], 3),
            "note": "2 shared CPU cores, busy with other agents' jobs: timings are noisy",
        }
        print(json.dumps(out))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
