"""DPO with LoRA against a full fine-tune on the same Hugging Face model and data, and against TRL's DPOTrainer.

The model is a Llama built from a config (random weights, saved with `save_pretrained`; default hidden 768, 8 layers,
MLP 2048, vocab 8192: about 63M parameters, 250 MB in fp32), sized so that weights, gradients and Adam's state
dominate the memory of a short-sequence step. The data are the first HH-RLHF rows of `../shared` (imported with
`kat pairs import`, `kat prefixes`), the tokenizer a byte-level BPE trained on them with a ChatML template. Three runs,
each in its own process, the same steps, pairs per step, `--max-len`, seed and thread count:

- `kat train dpo --init hf:MODEL` (full fine-tune: every weight trains, Adam holds two more copies);
- `kat train dpo --init hf:MODEL --lora-r R` (adapters on every attention and MLP projection; the reference is the
  same weights with the adapters off);
- TRL's `DPOTrainer` with the same `LoraConfig` (`bench/trl_dpo_lora_worker.py`, run by `--trl-python`, a bench
  environment with trl + peft; TRL is never a kat dependency), when that environment exists.

For each: trainable parameters, peak memory (the process's peak RSS, and its peak over the RSS after imports, i.e.
what the run itself added; on CUDA `torch.cuda.max_memory_allocated`) and training tokens/s (kat: real tokens of the
training steps / their time, the reference cache pass excluded; TRL: real tokens / train_runtime, its reference
forward included, as TRL computes it each step). Prints one JSON object with the ratios LoRA / full (memory) and
kat LoRA / TRL LoRA (tokens/s). The CPU is shared and the step counts are small: the figures are noisy.

    python bench/bench_lora.py [--steps 6] [--batch 4] [--pairs 48] [--max-len 128] [--r 16] [--device cpu]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
HH = HERE.parents[0].parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test-first1000.jsonl.gz"
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Runs one kat command in this process and reports its peak memory (imports counted apart as the baseline).
_KAT_CHILD = """
import json, resource, sys
import torch, transformers, peft, katcli.pipeline.train_dpo  # the baseline: what every run imports
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from katcli.__main__ import main
sys.argv = ["kat"] + json.loads(sys.argv[1])
try:
    main()
except SystemExit as e:
    if e.code not in (0, None):
        raise
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cuda = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
print("KATMEM " + json.dumps({"baseline_kib": base, "peak_kib": peak, "cuda_max_allocated": cuda}))
"""


def build_model(root: Path, texts: list[str], a: argparse.Namespace) -> tuple[Path, int]:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=a.vocab, special_tokens=specials))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                  additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    tok.chat_template = CHATML
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=a.hidden, intermediate_size=a.mlp, num_hidden_layers=a.layers,
                      num_attention_heads=a.heads, num_key_value_heads=max(1, a.heads // 3),
                      max_position_embeddings=max(512, a.max_len), tie_word_embeddings=False,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = AutoModelForCausalLM.from_config(cfg)
    d = root / "model"
    model.save_pretrained(str(d))
    tok.save_pretrained(str(d))
    return d, sum(p.numel() for p in model.parameters())


def run_kat(ws: Path, name: str, flags: list[str]) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    args = ["-q", "-w", str(ws), "train", "dpo", "--name", name, *flags]
    out = subprocess.run([sys.executable, "-c", _KAT_CHILD, json.dumps(args)], check=True, env=env,
                         capture_output=True, text=True)
    mem = json.loads(next(x for x in out.stdout.splitlines() if x.startswith("KATMEM "))[7:])
    from katcli.workspace import Manifest

    stats = Manifest.load(ws / "manifest.json").runs[f"dpo/{name}"].stats
    meta = json.loads(next((ws / "dpo_checkpoints" / name).glob("meta_*.json")).read_text())
    return {"tokens_per_s": stats["tokens_per_s"], "peak_rss_mib": round(mem["peak_kib"] / 1024, 1),
            "run_rss_mib": round((mem["peak_kib"] - mem["baseline_kib"]) / 1024, 1),
            "cuda_max_allocated_mib": round(mem["cuda_max_allocated"] / 2**20, 1) if mem["cuda_max_allocated"] else None,
            "trainable_params": (meta.get("lora") or {}).get("trainable_params"),
            "state_mib": stats["state_mib_per_process"]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--pairs", type=int, default=48)
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--mlp", type=int, default=2048)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--trl-python", default="/work/bench-lora-trl/bin/python")
    a = p.parse_args()
    if not HH.is_file():
        print(json.dumps({"skipped": f"{HH} is absent"}))
        return
    root = Path(tempfile.mkdtemp(prefix="kat-bench-lora-"))
    try:
        with gzip.open(HH, "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for _, line in zip(range(a.pairs), f)]
        src = root / "hh.jsonl"
        src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        ws = root / "ws"
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        for cmd in (["pairs", "import", str(src)], ["prefixes"]):
            subprocess.run([sys.executable, "-m", "katcli", "-q", "-w", str(ws), *cmd], check=True, env=env)
        pairs = [json.loads(x) for x in (ws / "data" / "pairs_all.jsonl").read_text(encoding="utf-8").splitlines()]
        texts = [m["content"] for q in pairs for m in q["prefix"]["messages"]] + [q[k] for q in pairs
                                                                                 for k in ("chosen", "rejected")]
        model, n_params = build_model(root, texts, a)
        common = ["--init", f"hf:{model}", "--max-steps", str(a.steps), "--batch-size", str(a.batch), "--max-len",
                  str(a.max_len), "--eval-every", "0", "--save-every", "0", "--val-ratio", "0.1", "--lr", "1e-5",
                  "--device", a.device, "--threads", str(a.threads)]
        full = run_kat(ws, "full", common)
        lora = run_kat(ws, "lora", [*common, "--lora-r", str(a.r)])
        full["trainable_params"] = n_params
        trl = None
        if Path(a.trl_python).is_file():
            data = root / "trl.json"
            data.write_text(json.dumps([{"prompt": q["prefix"]["messages"], "chosen": [{"role": "assistant",
                            "content": q["chosen"]}], "rejected": [{"role": "assistant", "content": q["rejected"]}]}
                            for q in pairs]), encoding="utf-8")
            out = subprocess.run([a.trl_python, str(HERE / "trl_dpo_lora_worker.py"), "--model", str(model),
                                  "--data", str(data), "--out", str(root / "trl"), "--steps", str(a.steps), "--batch",
                                  str(a.batch), "--max-len", str(a.max_len), "--threads", str(a.threads), "--r",
                                  str(a.r), "--device", a.device], capture_output=True, text=True, env=env)
            if out.returncode == 0:
                trl = json.loads(out.stdout.strip().splitlines()[-1])
            else:  # kat's figures still stand; say why TRL's are missing
                print(out.stderr[-3000:], file=sys.stderr)
        mem_key = "cuda_max_allocated_mib" if a.device.startswith("cuda") else "run_rss_mib"
        result = {
            "model": {"type": "llama (random, from a config)", "params": n_params, "fp32_mib": round(n_params * 4 / 2**20, 1),
                      "hidden": a.hidden, "layers": a.layers, "mlp": a.mlp, "vocab": a.vocab},
            "setup": {"steps": a.steps, "pairs_per_step": a.batch, "max_len": a.max_len, "lora_r": a.r,
                      "threads": a.threads, "device": a.device, "pairs": len(pairs)},
            "kat_full": full, "kat_lora": lora, "trl_lora": trl,
            "lora_vs_full_memory": round(lora[mem_key] / full[mem_key], 3),
            "lora_vs_full_peak_rss": round(lora["peak_rss_mib"] / full["peak_rss_mib"], 3),
            "lora_vs_full_tokens_per_s": round(lora["tokens_per_s"] / full["tokens_per_s"], 3),
            "kat_lora_vs_trl_lora_tokens_per_s": round(lora["tokens_per_s"] / trl["tokens_per_s"], 3) if trl else None,
            "goals": {"memory_le_0.6_full": lora[mem_key] <= 0.6 * full[mem_key],
                      "tokens_per_s_ge_0.9_trl": (lora["tokens_per_s"] >= 0.9 * trl["tokens_per_s"]) if trl else None},
        }
        print(json.dumps(result))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
