"""TRL's `RewardTrainer` on given pairs, for `bench_hf_rm_trl.py`; runs in the bench environment only (needs trl).

Prints one JSON object: train_runtime, steps, real tokens trained on and tokens/s.
"""

from __future__ import annotations

import argparse
import json

import torch


def main() -> None:
    p = argparse.ArgumentParser()
    for name in ("--model", "--data", "--out"):
        p.add_argument(name, required=True)
    for name in ("--steps", "--batch", "--max-len", "--threads"):
        p.add_argument(name, type=int, required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    rows = json.load(open(a.data, encoding="utf-8"))
    tok = AutoTokenizer.from_pretrained(a.model)
    if tok.eos_token is None:  # TRL appends an EOS to every text; BERT has none, so [SEP] stands in (one token more)
        tok.eos_token = tok.sep_token
    model = AutoModelForSequenceClassification.from_pretrained(a.model, num_labels=1)
    cfg = RewardConfig(
        output_dir=a.out, max_steps=a.steps, per_device_train_batch_size=a.batch, max_length=a.max_len,
        learning_rate=2e-5, logging_steps=a.steps, save_strategy="no", report_to="none", use_cpu=True, bf16=False,
        gradient_checkpointing=False, seed=0, dataloader_num_workers=0,
    )
    tokens = {"n": 0}

    trainer = RewardTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok)
    inner = trainer.compute_loss

    def counting_loss(model, inputs, *args, **kw):
        mask = inputs.get("attention_mask")
        if mask is not None and model.training:
            tokens["n"] += int(mask.sum())
        return inner(model, inputs, *args, **kw)

    trainer.compute_loss = counting_loss
    out = trainer.train()
    runtime = float(out.metrics["train_runtime"])
    print(json.dumps({"train_runtime_s": round(runtime, 2), "steps": a.steps, "tokens": tokens["n"],
                      "tokens_per_s": round(tokens["n"] / runtime, 1)}))


if __name__ == "__main__":
    main()
