"""Training throughput of the reward-model and SFT objectives: length bucketing vs. padding every batch to
--max-len; prints ONE JSON object.

    python bench/bench_train_batching.py            # depth 2, --max-len 512, 24 steps of 16 pairs per mode
    python bench/bench_train_batching.py --quick    # depth 1, --max-len 256, 8 steps

Both objectives run through the one training loop (`katcli.train.loop`). Baseline (issues 6 and 11): the same
loop, data, model init and sample stream, with every micro-batch padded to --max-len and no bucketing. Also reported: no bucketing but padding each batch only to its own longest sequence.
Per mode: real (non-pad) tokens per second of training-step time, pad fraction, seconds per step. Ratios compare
bucketing against the baseline. Each mode trains a fresh model from the same seed, so the work differs only in
padding.

Data: the real HH-RLHF rows in ../shared when present (parsed with kat's HH parser, chosen/rejected as in the
pairs file), else generated conversations with long-tailed lengths. The tokenizer is trained on that text.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import random
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
HH = REPO.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test-first1000.jsonl.gz"


def real_rows() -> list[tuple[list[dict], str, str]]:
    from katcli.data.hh import parse_row
    from katcli.data.schema import Drop

    rows = []
    with gzip.open(HH, "rt", encoding="utf-8") as fh:
        for line in fh:
            raw = json.loads(line)
            try:
                parsed = parse_row(raw.get("chosen"), raw.get("rejected"))
            except Drop:
                continue
            rows.append((parsed.messages, parsed.chosen, parsed.rejected))
    return rows


def synthetic_rows(n: int, seed: int = 0) -> list[tuple[list[dict], str, str]]:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(400)]

    def text(mean: float) -> str:
        k = max(1, int(rng.lognormvariate(np.log(mean), 0.9)))
        return " ".join(rng.choice(words) for _ in range(k))

    rows = []
    for _ in range(n):
        messages = [{"role": "user", "content": text(25)}]
        for _ in range(rng.choice([0, 0, 1, 2])):
            messages += [{"role": "assistant", "content": text(30)}, {"role": "user", "content": text(15)}]
        rows.append((messages, text(40), text(40)))
    return rows


def run_mode(objective, name, enc, tok, probs, train_index, args, *, bucketing: bool, pad_to: int | None) -> dict:
    from katcli.model.gpt import GPT, GPTConfig
    from katcli.train.ddp import DistContext
    from katcli.train.loop import LoopSettings, TrainingLoop
    from katcli.train.objectives.rm import RewardModelObjective
    from katcli.train.objectives.sft import SFTObjective
    from katcli.train.reward_model import RewardModel
    from katcli.train.sampler import WeightedSampler

    config = GPTConfig.from_depth(args.depth, vocab_size=tok.vocab_size, sequence_len=args.max_len)
    gpt = GPT(config, seed=0)
    if objective == "rm":
        obj = RewardModelObjective(RewardModel(gpt), enc, pad_id=tok.bos_token_id, pad_to=pad_to)
    else:
        obj = SFTObjective(gpt, enc, pad_id=tok.bos_token_id, pad_to=pad_to)
    sampler = WeightedSampler(probs, enc.row_lengths[train_index], seed=0, batch_size=args.batch_size,
                              pool_batches=32, bucketing=bucketing)
    settings = LoopSettings(max_steps=args.steps, micro_batch_size=args.batch_size, lr=1e-3, warmup_steps=1)
    out = TrainingLoop(obj, train_index, sampler, settings, dist=DistContext(), out_dir=None).train()
    return {
        "objective": objective,
        "mode": name,
        "tokens_per_s": round(out.tokens_per_s, 1),
        "pad_fraction": round(out.pad_fraction, 4),
        "seconds_per_step": round(out.train_seconds / args.steps, 4),
        "real_tokens": out.real_tokens,
        "pad_tokens": out.pad_tokens,
        "final_loss": out.last.get("loss"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--depth", type=int)
    parser.add_argument("--max-len", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    args.depth = args.depth or (1 if args.quick else 2)
    args.max_len = args.max_len or (256 if args.quick else 512)
    args.steps = args.steps or (8 if args.quick else 24)
    if args.threads:
        torch.set_num_threads(args.threads)

    from katcli.model.tokenizer import Tokenizer
    from katcli.train.sampler import item_probabilities
    from katcli.train.sequences import encode_pairs, encode_sequences

    source = "hh-rlhf harmless-base test (first 1000 rows)" if HH.is_file() else "synthetic"
    rows = real_rows() if HH.is_file() else synthetic_rows(1000)
    texts = [t for m, c, r in rows for t in [x["content"] for x in m] + [c, r]]
    tok = Tokenizer.train(texts, 2048)
    encoded = {
        "rm": encode_pairs(tok, rows, max_len=args.max_len, max_response_len=args.max_len // 2),
        "sft": encode_sequences(tok, [(m, (c,)) for m, c, _ in rows], max_len=args.max_len,
                                max_response_len=args.max_len // 2),
    }
    train_index = np.arange(len(rows))
    probs = item_probabilities(["x"] * len(rows))
    report: dict = {
        "bench": "train_batching",
        "quick": args.quick,
        "data": {"source": source, "pairs": len(rows), "tokenizer_vocab": tok.vocab_size},
        "config": {"depth": args.depth, "max_len": args.max_len, "batch_size": args.batch_size,
                   "steps": args.steps, "threads": torch.get_num_threads()},
        "baseline": "pad_to_max_len",
    }
    for objective, enc in encoded.items():
        lengths = enc.row_lengths
        results = [
            run_mode(objective, "bucketed", enc, tok, probs, train_index, args, bucketing=True, pad_to=None),
            run_mode(objective, "unbucketed_dynamic_padding", enc, tok, probs, train_index, args, bucketing=False,
                     pad_to=None),
            run_mode(objective, "pad_to_max_len", enc, tok, probs, train_index, args, bucketing=False,
                     pad_to=args.max_len),
        ]
        by = {r["mode"]: r for r in results}
        base = by["pad_to_max_len"]
        report[objective] = {
            "length_mean": round(float(lengths.mean()), 1), "length_p50": int(np.median(lengths)),
            "length_p95": int(np.percentile(lengths, 95)), "length_max": int(lengths.max()),
            "prefix_trimmed": enc.prefix_trimmed, "responses_cut": enc.responses_cut,
            "results": results,
            "tokens_per_s_ratio_bucketed_vs_baseline": round(by["bucketed"]["tokens_per_s"] / base["tokens_per_s"], 2),
            "tokens_per_s_ratio_unbucketed_vs_baseline": round(
                by["unbucketed_dynamic_padding"]["tokens_per_s"] / base["tokens_per_s"], 2),
            "pad_fraction_bucketed": by["bucketed"]["pad_fraction"],
            "pad_fraction_baseline": base["pad_fraction"],
        }
    report["machine"] = {"python": platform.python_version(), "torch": torch.__version__, "cpus": len(
        __import__("os").sched_getaffinity(0)) if hasattr(__import__("os"), "sched_getaffinity") else None}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())
