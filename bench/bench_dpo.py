"""DPO training throughput: kat's loop with cached reference log-probs, vs a reference forward every step, vs TRL.

All three train a GPT of the same size on the same token sequences: kat's built-in sample pairs, rendered and
truncated by kat (`render_for_completion(prefix)` + reply + `<|assistant_end|>`, `--max-len`), so every side sees
identical prompt and reply tokens. The peer is TRL's `DPOTrainer` on a transformers `GPT2LMHeadModel` with the
same depth, width, head count and untied head (kat's GPT is nanochat's; GPT-2 differs in details: learned
positions, LayerNorm, GELU, biases; the parameter counts are reported). TRL gets kat's token ids through a
WordLevel tokenizer whose words are the ids (`t17 t4 …`), so its own tokenization reproduces them exactly.

TRL is not a kat dependency: it runs in a separate environment (`--trl-python`, default `/work/benchenv/bin/python`,
made with `python3 -m venv /work/benchenv && /work/benchenv/bin/pip install -c constraints.txt trl`) as a
subprocess of this script (`--trl-worker SPEC.json`), which needs nothing from katcli.

Throughput is training pairs per second after one warm-up step, times the mean real tokens per pair (prompt +
chosen + prompt + rejected) of the training pairs, so padding is not counted as work on either side. Both use the
same batch size, steps, learning rate, β and thread count. kat's runs: cached reference log-probs (what `kat train
dpo` does; the one-off reference pass is timed separately), a reference forward in every micro-batch (what the cache
saves), and the cached run without length bucketing (random-length batches, as TRL draws them: this isolates the
share of the speed-up that comes from bucketing). TRL runs with its default (a reference forward every step) and
with `precompute_ref_log_probs=True`. Prints one JSON object; the ratios compare runs of the same invocation.

    python bench/bench_dpo.py [--quick] [--depth 2] [--steps 8] [--batch 8] [--max-len 256] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_TRL_PYTHON = "/work/benchenv/bin/python"


# ---------------------------------------------------------------------------------------------------- data (kat env)


def sample_sequences(root: Path, *, vocab_size: int, max_len: int, max_response_len: int, n_pairs: int) -> dict:
    """kat's sample pairs as (prompt ids, chosen reply ids, rejected reply ids), truncated exactly as kat does."""
    from katcli.model.tokenizer import Tokenizer
    from katcli.pipeline.pairs import DownloadConfig, run_download
    from katcli.pipeline.prefixes import PrefixesConfig, run_prefixes
    from katcli.pipeline.tokenizer import TokenizerConfig, run_tokenizer
    from katcli.train.inputs import read_pairs
    from katcli.train.sequences import END, USER_START, fit_pair
    from katcli.workspace import Workspace
    from katcli.workspace import paths as P

    ws = Workspace(root)
    run_download(ws, DownloadConfig(from_dir="sample", seed=0))
    run_prefixes(ws, PrefixesConfig())
    run_tokenizer(ws, TokenizerConfig(vocab_size=vocab_size))
    tok = Tokenizer.load(ws.abs(f"{P.TOKENIZER_DIR}/tokenizer.json"))
    pairs = read_pairs(ws.abs(P.PAIRS))[:n_pairs]
    bos, user_start, end = tok.bos_token_id, tok.encode_special(USER_START), tok.encode_special(END)
    rows = []
    for p in pairs:
        prefix = tok.render_for_completion(list(p.messages))
        chosen, rejected = tok.encode(p.chosen), tok.encode(p.rejected)
        seq_c, seq_r, _ = fit_pair(prefix, chosen, rejected, bos=bos, user_start=user_start, end=end,
                                   max_len=max_len, max_response_len=max_response_len)
        n_prompt = len(seq_c) - (min(len(chosen), max_response_len) + 1)
        rows.append({"prompt": seq_c[:n_prompt], "chosen": seq_c[n_prompt:], "rejected": seq_r[n_prompt:]})
    return {"vocab_size": tok.vocab_size, "end_id": end, "pad_id": bos, "rows": rows, "workspace": str(root)}


def mean_tokens_per_pair(rows: list[dict]) -> float:
    return sum(2 * len(r["prompt"]) + len(r["chosen"]) + len(r["rejected"]) for r in rows) / len(rows)


# ---------------------------------------------------------------------------------------------------- kat (kat env)


def kat_runs(data: dict, *, depth: int, max_len: int, batch: int, steps: int, lr: float, beta: float) -> dict:
    """kat's DPO loop, timed over `steps` steps after one warm-up: cached reference log-probs, then a reference
    forward in every micro-batch (what kat avoids), on the same model size, pairs, sample stream and settings."""
    import numpy as np
    import torch

    from katcli.model.gpt import GPT, GPTConfig
    from katcli.train.batching import eval_batches
    from katcli.train.ddp import DistContext
    from katcli.train.dpo_losses import DPOLossConfig
    from katcli.train.loop import LoopSettings, TrainingLoop
    from katcli.train.objectives.dpo import DPOObjective
    from katcli.train.ref_cache import compute_ref_logps
    from katcli.train.sampler import WeightedSampler
    from katcli.train.seq_scoring import model_logprob_fn
    from katcli.train.sequences import EncodedPairs

    rows = data["rows"]
    seqs = [[r["prompt"] + r["chosen"], r["prompt"] + r["rejected"]] for r in rows]
    length = np.array([[len(a), len(b)] for a, b in seqs], dtype=np.int64)
    off = np.cumsum(np.r_[0, length.reshape(-1)])[:-1].reshape(-1, 2)
    tokens = np.concatenate([np.asarray(s, dtype=np.int32) for pair in seqs for s in pair])
    enc = EncodedPairs(tokens, off, length, np.array([len(r["prompt"]) for r in rows], dtype=np.int64))
    config = GPTConfig.from_depth(depth, vocab_size=data["vocab_size"], sequence_len=max_len)
    device = torch.device("cpu")
    dist = DistContext(device=device)
    n = len(enc)

    reference = GPT(config, seed=0).eval()
    t0 = time.perf_counter()
    ref = compute_ref_logps(
        n, eval_batches(enc, np.arange(n), batch_size=batch, pad_id=data["pad_id"]),
        model_logprob_fn(reference, device),
    )
    ref_seconds = time.perf_counter() - t0

    class ForwardEveryStep(DPOObjective):
        """The same objective, but the reference's log-probs come from a forward pass in every micro-batch."""

        def reference_logps(self, b, dev):
            with torch.no_grad():
                sums, _ = model_logprob_fn(reference, dev)(b.mb)
            m = b.mb.n_pairs
            return sums[:m].double(), sums[m:].double()

    out: dict = {"params": sum(p.numel() for p in reference.parameters()), "ref_pass_seconds": round(ref_seconds, 3)}
    variants = (
        ("kat_cached_ref", DPOObjective, True),
        ("kat_ref_forward_every_step", ForwardEveryStep, True),
        ("kat_cached_ref_no_bucketing", DPOObjective, False),  # batches of random lengths, as TRL draws them
    )
    for label, cls, bucketing in variants:
        policy = GPT(config, seed=0)  # the policy starts as the reference, as with --init and no --ref
        objective = cls(policy, enc, ref, loss_cfg=DPOLossConfig(beta=beta), pad_id=data["pad_id"])
        sampler = WeightedSampler(np.full(n, 1.0 / n), enc.pair_lengths, seed=0, batch_size=batch, bucketing=bucketing)
        settings = LoopSettings(max_steps=steps + 1, micro_batch_size=batch, lr=lr, warmup_steps=0)
        marks: list[float] = []
        loop = TrainingLoop(objective, np.arange(n), sampler, settings, dist=dist, out_dir=None,
                            on_step=lambda record, marks=marks: marks.append(time.perf_counter()))
        loop.train()
        seconds = marks[-1] - marks[0]
        out[label] = {"pairs_per_s": batch * steps / seconds, "seconds": seconds}
    return out


# ---------------------------------------------------------------------------------------------------- TRL (peer env)


def trl_worker(spec_path: str) -> None:
    """Runs inside the TRL environment: DPOTrainer on a GPT-2 of the given size; prints one JSON object."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    import torch
    import transformers
    import trl
    from datasets import Dataset
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    transformers.logging.set_verbosity_error()
    logging.getLogger("trl").setLevel(logging.ERROR)
    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    vocab = {f"t{i}": i for i in range(spec["vocab_size"])}
    core = HFTokenizer(WordLevel(vocab, unk_token="t0"))
    core.pre_tokenizer = WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token=f"t{spec['end_id']}", pad_token=f"t{spec['pad_id']}", unk_token="t0"
    )

    def words(ids: list[int]) -> str:
        return "".join(f"t{i} " for i in ids)

    data = Dataset.from_list(
        [{"prompt": words(r["prompt"]), "chosen": words(r["chosen"]), "rejected": words(r["rejected"])}
         for r in spec["rows"]]
    )
    n_embd = 64 * spec["depth"]
    config = GPT2Config(
        vocab_size=spec["vocab_size"], n_positions=spec["max_len"], n_embd=n_embd, n_layer=spec["depth"],
        n_head=max(1, n_embd // 128), resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=False,
        bos_token_id=spec["pad_id"], eos_token_id=spec["end_id"], pad_token_id=spec["pad_id"],
    )
    torch.manual_seed(0)
    # Saved and reloaded so the model has a path: TRL builds its reference model from it (a second copy in memory).
    model_dir = Path(spec_path).parent / "trl_model"
    GPT2LMHeadModel(config).save_pretrained(model_dir)
    model = GPT2LMHeadModel.from_pretrained(model_dir)

    class Clock(TrainerCallback):
        """Wall time from the end of the first (warm-up) step to the end of training."""

        def __init__(self) -> None:
            self.t0: float | None = None
            self.t1: float | None = None

        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 1:
                self.t0 = time.perf_counter()
            self.t1 = time.perf_counter()

    clock = Clock()
    args = DPOConfig(
        output_dir=str(Path(spec_path).parent / "trl_out"), per_device_train_batch_size=spec["batch"],
        max_steps=spec["steps"] + 1, learning_rate=spec["lr"], beta=spec["beta"], loss_type=["sigmoid"],
        max_length=spec["max_len"], precompute_ref_log_probs=spec["precompute_ref"], gradient_checkpointing=False,
        use_cpu=True, bf16=False, report_to=[], save_strategy="no", logging_steps=10**9, dataloader_num_workers=0,
        disable_tqdm=True, seed=0, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
    )
    trainer = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, callbacks=[clock])
    trainer.train()
    seconds = clock.t1 - clock.t0
    print(json.dumps({
        "pairs_per_s": spec["batch"] * spec["steps"] / seconds,
        "seconds": seconds,
        "params": sum(p.numel() for p in model.parameters()),
        "precompute_ref_log_probs": spec["precompute_ref"],
        "trl": trl.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }))


def run_trl(python: str, spec: dict, tmp: Path) -> dict:
    spec_path = tmp / f"trl_spec_{int(spec['precompute_ref'])}.json"
    spec_path.write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               HF_HOME=str(tmp / "hf_home"), WANDB_DISABLED="true", OMP_NUM_THREADS=str(spec["threads"]))
    proc = subprocess.run(
        [python, __file__, "--trl-worker", str(spec_path)], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"TRL worker failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="depth 1, 3 steps, batch 4, max-len 128")
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8, help="timed steps (after one warm-up step)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--pairs", type=int, default=256, help="training pairs taken from the sample")
    ap.add_argument("--vocab-size", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: steady numbers on a shared 2-core machine)")
    ap.add_argument("--trl-python", default=DEFAULT_TRL_PYTHON, help="python of the environment with TRL")
    ap.add_argument("--no-trl", action="store_true", help="skip the TRL peer")
    ap.add_argument("--trl-worker", metavar="SPEC", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.trl_worker:
        trl_worker(args.trl_worker)
        return
    if args.quick:
        args.depth, args.steps, args.batch, args.max_len = 1, 3, 4, 128

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_dpo_") as tmp_name:
        tmp = Path(tmp_name)
        data = sample_sequences(tmp / "ws", vocab_size=args.vocab_size, max_len=args.max_len,
                                max_response_len=args.max_len // 2, n_pairs=args.pairs)
        per_pair = mean_tokens_per_pair(data["rows"])
        spec = {
            "rows": data["rows"], "vocab_size": data["vocab_size"], "end_id": data["end_id"], "pad_id": data["pad_id"],
            "depth": args.depth, "max_len": args.max_len, "batch": args.batch, "steps": args.steps, "lr": args.lr,
            "beta": args.beta, "threads": args.threads,
        }
        results: dict = kat_runs(data, depth=args.depth, max_len=args.max_len, batch=args.batch, steps=args.steps,
                                 lr=args.lr, beta=args.beta)
        for label in ("kat_cached_ref", "kat_ref_forward_every_step", "kat_cached_ref_no_bucketing"):
            results[label]["tokens_per_s"] = round(results[label]["pairs_per_s"] * per_pair, 1)
        if not args.no_trl:
            for precompute in (False, True):
                r = run_trl(args.trl_python, {**spec, "precompute_ref": precompute}, tmp)
                r["tokens_per_s"] = round(r["pairs_per_s"] * per_pair, 1)
                results["trl_precomputed_ref" if precompute else "trl"] = r
    cached = results["kat_cached_ref"]["tokens_per_s"]
    ratios = {"kat_cached_vs_ref_forward_every_step": round(cached / results["kat_ref_forward_every_step"]["tokens_per_s"], 3)}
    if "trl" in results:
        ratios["kat_cached_vs_trl"] = round(cached / results["trl"]["tokens_per_s"], 3)
        ratios["kat_cached_vs_trl_precomputed_ref"] = round(cached / results["trl_precomputed_ref"]["tokens_per_s"], 3)
        ratios["kat_no_bucketing_vs_trl_precomputed_ref"] = round(
            results["kat_cached_ref_no_bucketing"]["tokens_per_s"] / results["trl_precomputed_ref"]["tokens_per_s"], 3
        )
    print(json.dumps({
        "bench": "dpo",
        "quick": args.quick,
        "depth": args.depth,
        "steps": args.steps,
        "batch": args.batch,
        "max_len": args.max_len,
        "pairs": len(data["rows"]),
        "vocab_size": data["vocab_size"],
        "mean_tokens_per_pair": round(per_pair, 1),
        "threads": args.threads,
        "results": results,
        "ratios": ratios,
        "goal": "kat_cached_vs_trl >= 1.5",
        "cpu": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
    }, sort_keys=True))


if __name__ == "__main__":
    main()
