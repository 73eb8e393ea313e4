"""Training throughput of the GPT on this machine: tokens/s for depth 2, 4 and 6 (forward + backward + AdamW).

nanochat's depth rule (width 64·depth, 128-dim heads), vocab 32768, fp32 on CPU (bf16 autocast on CUDA). The issue
names no baseline, so ratios are reported against depth 2, with achieved GFLOP/s from nanochat's FLOPs-per-token
estimate. Prints one JSON object.

    python bench/bench_train_tokens.py [--quick] [--depths 2,4,6] [--seq-len 256] [--batch 4] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from katcli.model.gpt import GPT, GPTConfig


def bench_depth(depth: int, *, vocab: int, seq_len: int, batch: int, steps: int, device: torch.device) -> dict:
    cfg = GPTConfig.from_depth(depth, vocab_size=vocab, sequence_len=seq_len)
    model = GPT(cfg, seed=0).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.95), weight_decay=0.0)
    gen = torch.Generator().manual_seed(depth)
    data = torch.randint(0, vocab, (steps + 1, batch, seq_len + 1), generator=gen).to(device)

    def step(i: int) -> float:
        x, y = data[i, :, :-1], data[i, :, 1:]
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    step(steps)  # warm-up (allocations, AdamW state)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    losses = [step(i) for i in range(steps)]
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    tokens = steps * batch * seq_len
    tps = tokens / seconds
    return {
        "depth": depth,
        "n_embd": cfg.n_embd,
        "n_head": cfg.n_head,
        "params": model.num_params(),
        "tokens_per_s": round(tps, 1),
        "seconds_per_step": round(seconds / steps, 4),
        "gflops_per_s": round(tps * model.flops_per_token() / 1e9, 2),
        "final_loss": round(losses[-1], 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="seq len 64, 2 steps")
    ap.add_argument("--depths", default="2,4,6")
    ap.add_argument("--vocab-size", type=int, default=32768)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: steady numbers on a shared 2-core machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.seq_len, args.steps = 64, 2
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = [
        bench_depth(int(d), vocab=args.vocab_size, seq_len=args.seq_len, batch=args.batch, steps=args.steps,
                    device=device)
        for d in args.depths.split(",")
    ]
    base = rows[0]["tokens_per_s"]
    for row in rows:
        row["ratio_vs_first_depth"] = round(row["tokens_per_s"] / base, 3)
    print(json.dumps({
        "bench": "train_tokens",
        "quick": args.quick,
        "device": device.type,
        "vocab_size": args.vocab_size,
        "seq_len": args.seq_len,
        "batch": args.batch,
        "steps": args.steps,
        "optimizer": "AdamW",
        "results": rows,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
    }, sort_keys=True))


if __name__ == "__main__":
    main()
