"""`kat eval policy` on an arm of 3 replicates against one replicate: the cost of seeds; prints ONE JSON object.

    python bench/bench_eval_replicates.py            # 200 prompts × 4 samples, 128 new tokens
    python bench/bench_eval_replicates.py --quick    # 20 prompts × 2 samples, 32 new tokens

The workspace is `bench_eval_policy.py`'s (synthetic pairs, a BPE tokenizer, density weights, a tiny reward
model); the replicates `p-s0`, `p-s1`, `p-s2` are random GPTs whose records differ only in the seed. The same run
evaluates `p-s0` alone (one replicate: the baseline) and `p` (the arm: every replicate on the same prompts, one
MiniLM load, plus the across-seed figures), each best of two. Reported: `arm_vs_one` (issue 23's goal ≤ 3.3) and
the share of each evaluation's time spent embedding replies (goal ≤ 0.30).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

_threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv[:-1] else "1"
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _threads)

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bench_eval_policy import build_workspace  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 prompts × 2 samples, 32 new tokens")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: steady on a shared machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from katcli.model.checkpoint import save_checkpoint
    from katcli.model.gpt import GPT, GPTConfig
    from katcli.pipeline.eval_policy import EvalPolicyConfig, run_eval_policy
    from katcli.pipeline.train_rm import run_train_rm, tiny_config

    n_prompts, samples, new_tokens = (20, 2, 32) if args.quick else (200, 4, 128)
    heldout = {"seed": 0, "val_ratio": 0.5}
    root = Path(tempfile.mkdtemp(prefix="kat-bench-evalreplicates-"))
    try:
        ws, tok = build_workspace(root / "ws", 3 * n_prompts)
        run_train_rm(ws, tiny_config(max_steps=4, max_len=256, name="judge", **heldout))
        config = GPTConfig(sequence_len=512, vocab_size=tok.vocab_size, n_layer=2, n_head=2, n_kv_head=2, n_embd=128)
        for seed in range(3):
            model = GPT(config)
            gen = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
            d = ws.abs(f"sft_checkpoints/p-s{seed}")
            save_checkpoint(d, 1, model, {"kind": "kat-policy", "model_config": config.to_dict(),
                                          "tokenizer_sha256": tok.sha256(), "heldout": heldout,
                                          "config": {"seed": seed, "name": f"p-s{seed}"}})
            (d / "tokenizer.json").write_bytes(tok.to_json_bytes())

        def evaluate(policy: str) -> tuple[float, dict]:
            cfg = EvalPolicyConfig(policies=(policy,), rms=("judge",), prompts=n_prompts, samples=samples,
                                   max_new_tokens=new_tokens, device="cpu", threads=args.threads, force=True)
            t0 = time.perf_counter()
            data = run_eval_policy(ws, cfg).data
            return time.perf_counter() - t0, data

        runs: dict[str, list[tuple[float, dict]]] = {"one": [], "arm": []}
        for _ in range(2):  # alternated, best of two
            runs["one"].append(evaluate("sft/p-s0"))
            runs["arm"].append(evaluate("sft/p"))
        best = {k: min(v, key=lambda r: r[0]) for k, v in runs.items()}
        share = {k: round((d["timings"]["embed_s"] + d["timings"]["embed_load_s"]) / s, 3) for k, (s, d) in best.items()}
        print(json.dumps({
            "bench": "eval_replicates", "quick": args.quick, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__,
            "prompts": best["one"][1]["prompts"]["n"], "samples": samples, "max_new_tokens": new_tokens,
            "replicates": len(best["arm"][1]["arms"][0]["replicates"]),
            "seconds": {"one": round(best["one"][0], 2), "arm": round(best["arm"][0], 2),
                        "one_timings": best["one"][1]["timings"], "arm_timings": best["arm"][1]["timings"]},
            "arm_vs_one": round(best["arm"][0] / best["one"][0], 3),
            "embed_share": share,
        }))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
