"""`kat eval policy` on CPU: generation throughput and where the time goes; prints ONE JSON object.

    python bench/bench_eval_policy.py            # 4 policies × 200 prompts × 4 samples, 128 new tokens, small GPTs
    python bench/bench_eval_policy.py --quick    # 2 policies × 20 prompts × 2 samples, 32 new tokens

A throw-away workspace is built with kat's own stages' file formats (synthetic pairs, a BPE tokenizer trained on
them, density weights, a tiny reward model trained by `run_train_rm`), plus randomly initialised policies (random
weights babble until --max-new-tokens, the most tokens an evaluation can cost). Then `run_eval_policy` runs with the
real MiniLM embedder. Reported: tokens/s of generation, seconds for generate / score / embed / metrics.

Baseline, same run: the same prompts sampled by a plain `Engine.generate` call per batch with one batch seed (no
per-(prompt, sample) streams); `generate_vs_plain_engine` is evaluation tokens/s over the plain engine's (≈ 1 means
reproducible per-row seeding costs nothing). Both run on the first policy, alternating, best of two.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

# numpy's BLAS (the Vendi eigen-decompositions) gets the same thread budget as torch, set before numpy loads: on a
# shared 2-core machine a multi-threaded eigvalsh of a 126×126 matrix takes 8× longer than a single-threaded one.
_threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv[:-1] else "1"
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

WORDS = [f"w{i}" for i in range(600)] + "the a of to and is in that it for".split()


def _text(rng: random.Random, mean: float) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(max(1, int(rng.lognormvariate(np.log(mean), 0.6)))))


def build_workspace(root: Path, n_prompts: int, seed: int = 0):
    from katcli.data.keys import prefix_id
    from katcli.model.tokenizer import Tokenizer
    from katcli.pipeline.stage import StageRun
    from katcli.workspace import Workspace
    from katcli.workspace import paths as P

    rng = random.Random(seed)
    pairs, prefixes = [], []
    for q in range(n_prompts):
        messages = [{"role": "user", "content": f"q{q} " + _text(rng, 20)}]
        pid = prefix_id(messages)
        pairs.append({"id": f"b{q}", "prefix": {"messages": messages}, "chosen": "please " + _text(rng, 30),
                      "rejected": _text(rng, 30), "src": ("hh-rlhf", "stack-exchange")[q % 2], "split": "train",
                      "prefix_id": pid, "meta": {}})
        prefixes.append({"id": pid, "prefix": {"messages": messages}, "n_pairs": 1, "srcs": [pairs[-1]["src"]]})
    ws = Workspace(root)
    lines = lambda rows: b"".join((json.dumps(r) + "\n").encode() for r in rows)  # noqa: E731

    def record(stage, outputs, inputs=()):
        with StageRun(ws, stage, params={"bench": True}, command=f"bench {stage}") as run:
            for rel in inputs:
                run.input(rel)
            for rel, data in outputs.items():
                run.output(rel).write_bytes(data)

    record("pairs", {P.PAIRS: lines(pairs)})
    record("prefixes", {P.PREFIXES: lines(prefixes),
                        P.PREFIX_ID_MAP: b"".join(f"{p['id']}\t{p['prefix_id']}\n".encode() for p in pairs)},
           (P.PAIRS,))
    texts = [t for p in pairs for t in (p["prefix"]["messages"][0]["content"], p["chosen"], p["rejected"])]
    tok = Tokenizer.train(texts, 1024)
    record("tokenizer", {f"{P.TOKENIZER_DIR}/tokenizer.json": tok.to_json_bytes()}, (P.PAIRS,))
    w = np.exp(np.random.default_rng(seed).uniform(0, 3.4, n_prompts))

    def npy(a):
        buf = io.BytesIO()
        np.save(buf, a)
        return buf.getvalue()

    record("embed", {P.EMBEDDINGS: npy(np.zeros((n_prompts, 4), np.float32)),
                     P.DENSITY_WEIGHTS: npy((w / w.sum()).astype(np.float32)),
                     P.EMBED_IDS: json.dumps([p["id"] for p in prefixes]).encode(), P.EMBED_METADATA: b"{}"},
           (P.PREFIXES,))
    return ws, tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 policies × 20 prompts × 2 samples, 32 new tokens")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: steady on a shared machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from katcli.model.checkpoint import save_checkpoint
    from katcli.model.engine import Engine, SamplingConfig
    from katcli.model.gpt import GPT, GPTConfig
    from katcli.pipeline.eval_policy import EvalPolicyConfig, run_eval_policy
    from katcli.pipeline.train_rm import run_train_rm, tiny_config

    n_pol, n_prompts, samples, new_tokens = (2, 20, 2, 32) if args.quick else (4, 200, 4, 128)
    heldout = {"seed": 0, "val_ratio": 0.5}
    root = Path(tempfile.mkdtemp(prefix="kat-bench-evalpolicy-"))
    try:
        t0 = time.perf_counter()
        ws, tok = build_workspace(root / "ws", 3 * n_prompts)
        run_train_rm(ws, tiny_config(max_steps=4, max_len=256, name="judge", **heldout))
        config = GPTConfig(sequence_len=512, vocab_size=tok.vocab_size, n_layer=2, n_head=2, n_kv_head=2, n_embd=128)
        names = []
        for k in range(n_pol):
            model = GPT(config)
            gen = torch.Generator().manual_seed(k)
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
            d = ws.abs(f"sft_checkpoints/p{k}")
            save_checkpoint(d, 1, model, {"kind": "kat-policy", "model_config": config.to_dict(),
                                          "tokenizer_sha256": tok.sha256(), "heldout": heldout})
            (d / "tokenizer.json").write_bytes(tok.to_json_bytes())
            names.append(f"p{k}")
        setup_s = time.perf_counter() - t0

        cfg = EvalPolicyConfig(policies=tuple(names), rms=("judge",), prompts=n_prompts, samples=samples,
                               max_new_tokens=new_tokens, device="cpu", threads=args.threads)
        t0 = time.perf_counter()
        data = run_eval_policy(ws, cfg).data
        total_s = time.perf_counter() - t0
        tokens = sum(p["tokens_generated"] for p in data["policies"])
        gen_s = data["timings"]["generate_s"]

        # Baseline: plain Engine.generate, one batch seed, same prompts and batches, first policy; alternated with
        # the evaluation's own generate_replies twice each, best of two, so machine noise hits both alike.
        from katcli.evaluation.generate import GenerationConfig, generate_replies, render_prompts
        from katcli.model.checkpoint import load_model
        from katcli.train import inputs as I

        pairs = {p.prefix_id: p for p in I.read_pairs(ws.abs("data/pairs_all.jsonl"))}
        msgs = [pairs[pid].messages for pid in data["prompts"]["ids"]]
        model, _ = load_model(ws.abs("sft_checkpoints/p0"))
        model.eval()
        rendered, _ = render_prompts(tok, msgs, context=config.sequence_len, max_new_tokens=new_tokens, name="p0")
        order = sorted(range(len(rendered)), key=lambda i: len(rendered[i]))
        engine = Engine(model, tok)

        def plain() -> int:
            n = 0
            for lo in range(0, len(order), cfg.batch_size):
                g = engine.generate([rendered[i] for i in order[lo : lo + cfg.batch_size]],
                                    SamplingConfig(max_new_tokens=new_tokens, num_samples=samples, seed=lo))
                n += int(g.mask.sum()) - int(g.finished.sum())
            return n

        def seeded() -> int:
            gcfg = GenerationConfig(samples=samples, max_new_tokens=new_tokens, batch_prompts=cfg.batch_size)
            return generate_replies(model, tok, msgs, data["prompts"]["ids"], gcfg)[1]["tokens"]

        rates: dict[str, list[float]] = {"plain": [], "seeded": []}
        for _ in range(2):
            for name, fn in (("plain", plain), ("seeded", seeded)):
                t0 = time.perf_counter()
                n = fn()
                rates[name].append(n / (time.perf_counter() - t0))
        print(json.dumps({
            "bench": "eval_policy", "quick": args.quick, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__,
            "policies": n_pol, "prompts": data["prompts"]["n"], "samples": samples, "max_new_tokens": new_tokens,
            "model": {**config.to_dict(), "n_params": model.num_params()},
            "tokens_generated": tokens, "generate_tokens_per_s": round(tokens / gen_s, 1),
            "seconds": {"setup": round(setup_s, 2), "total": round(total_s, 2), **data["timings"]},
            "p0_seeded_tokens_per_s": round(max(rates["seeded"]), 1),
            "baseline_plain_engine_tokens_per_s": round(max(rates["plain"]), 1),
            "generate_vs_plain_engine": round(max(rates["seeded"]) / max(rates["plain"]), 3),
        }))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
