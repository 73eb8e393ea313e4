"""TRL's `DPOTrainer` with a PEFT `LoraConfig` on given pairs, for `bench_lora.py`; runs in a bench environment only
(needs trl and peft). The LoRA settings are kat's defaults for `--lora-r R`: alpha 2R, dropout 0, every linear layer
of the attention and MLP blocks (`all-linear`). Prints one JSON object: train_runtime, steps, real tokens, tokens/s,
trainable parameters and peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource

import torch


def main() -> None:
    p = argparse.ArgumentParser()
    for name in ("--model", "--data", "--out", "--device"):
        p.add_argument(name, required=True)
    for name in ("--steps", "--batch", "--max-len", "--threads", "--r"):
        p.add_argument(name, type=int, required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows = json.load(open(a.data, encoding="utf-8"))
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    peft_config = LoraConfig(r=a.r, lora_alpha=2 * a.r, lora_dropout=0.0, target_modules="all-linear",
                             task_type="CAUSAL_LM")
    cuda = a.device.startswith("cuda")
    cfg = DPOConfig(
        output_dir=a.out, max_steps=a.steps, per_device_train_batch_size=a.batch, max_length=a.max_len,
        learning_rate=1e-5, beta=0.1, logging_steps=a.steps, save_strategy="no", report_to="none", use_cpu=not cuda,
        bf16=cuda, gradient_checkpointing=False, seed=0, dataloader_num_workers=0,
    )
    tokens = {"n": 0}
    trainer = DPOTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok,
                         peft_config=peft_config)
    inner = trainer.compute_loss

    def counting_loss(model, inputs, *args, **kw):
        for key in ("attention_mask", "chosen_attention_mask", "rejected_attention_mask"):
            if key in inputs and model.training:
                tokens["n"] += int(inputs[key].sum())
        return inner(model, inputs, *args, **kw)

    trainer.compute_loss = counting_loss
    out = trainer.train()
    runtime = float(out.metrics["train_runtime"])
    trainable = sum(q.numel() for q in trainer.model.parameters() if q.requires_grad)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"train_runtime_s": round(runtime, 2), "steps": a.steps, "tokens": tokens["n"],
                      "tokens_per_s": round(tokens["n"] / runtime, 1), "trainable_params": trainable,
                      "peak_rss_mib": round(peak / 1024, 1), "run_rss_mib": round((peak - base) / 1024, 1),
                      "cuda_max_allocated_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None}))


if __name__ == "__main__":
    main()
