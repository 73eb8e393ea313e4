"""Test kit for policy evaluation: policy directories written through the model API, policies whose replies we
control, and a cheap deterministic embedder.

- `write_policy` lays out a policy run the way training runs and `kat import nanochat` do (`save_checkpoint` +
  the tokenizer beside it or under `tokenizer/`), with the meta fields the evaluation reads.
- `constant_policy` trains a tiny GPT with a plain cross-entropy loop to answer every prompt with one fixed reply
  (a "collapsed" policy, and the planted "trained towards the marker" policy); `random_policy` is a GPT with large
  random weights, which at temperature 1 babbles varied tokens (a diverse policy).
- `bag_of_words_embedder`: unit vectors from hashed word counts — equal texts give equal vectors, texts without
  shared words give orthogonal-ish ones — for tests that must not load MiniLM.

Deliberately not a conftest.py; test modules `import evalkit`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from katcli.model.checkpoint import save_checkpoint
from katcli.model.gpt import GPT, GPTConfig
from katcli.model.tokenizer import Tokenizer
from katcli.train.split import split_pairs
from katcli.workspace import paths as P


def tiny_policy_config(vocab_size: int, **kw: int) -> GPTConfig:
    base = dict(sequence_len=96, vocab_size=vocab_size, n_layer=1, n_head=2, n_kv_head=2, n_embd=32)
    base.update(kw)
    return GPTConfig(**base)


def write_policy(
    directory: Path,
    model: GPT,
    tokenizer: Tokenizer,
    *,
    step: int = 10,
    layout: str = "run",
    heldout: dict[str, Any] | None = None,
    rm_run: str | None = None,
    kind: str | None = "kat-policy",
) -> Path:
    meta: dict[str, Any] = {"model_config": model.config.to_dict(), "tokenizer_sha256": tokenizer.sha256()}
    if kind is not None:
        meta["kind"] = kind
    if heldout is not None:
        meta["heldout"] = heldout
    if rm_run is not None:
        # What `kat train grpo` records (pipeline/train_grpo.py: `reward_model`).
        meta["reward_model"] = {"name": rm_run, "path": f"rm_checkpoints/{rm_run}", "step": None}
    save_checkpoint(directory, step, model, meta)
    tok = directory / ("tokenizer.json" if layout == "run" else "tokenizer/tokenizer.json")
    tok.parent.mkdir(parents=True, exist_ok=True)
    tok.write_bytes(tokenizer.to_json_bytes())
    return directory


def random_policy(tokenizer: Tokenizer, seed: int = 1, std: float = 0.5) -> GPT:
    model = GPT(tiny_policy_config(tokenizer.vocab_size))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model.eval()


def constant_policy(
    tokenizer: Tokenizer, prompts: Sequence[Sequence[dict]], reply: str, *, steps: int = 100, seed: int = 0,
    sharpen: float = 4.0,
) -> GPT:
    """A tiny GPT trained to answer `prompts` with `reply` + <|assistant_end|> (it generalises to other prompts:
    the target never depends on them). Its output layer is then scaled by `sharpen` — sampling at temperature 1
    behaves like temperature 1/sharpen — so it stays collapsed when sampled (≈ 99% exact replies)."""
    torch.manual_seed(seed)
    model = GPT(tiny_policy_config(tokenizer.vocab_size), seed=seed)
    end = tokenizer.encode_special("<|assistant_end|>")
    target = tokenizer.encode(reply) + [end]
    rows, masks = [], []
    for messages in prompts:
        prefix = tokenizer.render_for_completion(list(messages))[-(model.config.sequence_len - len(target)) :]
        rows.append(prefix + target)
        masks.append([0] * len(prefix) + [1] * len(target))
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    loss_mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, (r, m) in enumerate(zip(rows, masks)):
        ids[i, : len(r)] = torch.tensor(r)
        loss_mask[i, : len(m)] = torch.tensor(m, dtype=torch.bool)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1), reduction="none")
        loss = (loss * loss_mask[:, 1:].reshape(-1)).sum() / loss_mask[:, 1:].sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        model.lm_head.weight.mul_(sharpen)
    return model.eval()


def heldout_prompts(pairs: list[dict], *, seed: int, val_ratio: float) -> list[list[dict]]:
    """The prefix messages of every held-out prompt (first pair of each), as the evaluation will see them."""
    split = split_pairs([p["prefix_id"] for p in pairs], seed=seed, val_ratio=val_ratio)
    seen: dict[str, list[dict]] = {}
    for i in split.heldout:
        seen.setdefault(pairs[i]["prefix_id"], pairs[i]["prefix"]["messages"])
    return list(seen.values())


def bag_of_words_embedder(dim: int = 256):
    def embed(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.split() or [""]:
                out[i, int.from_bytes(hashlib.md5(w.encode()).digest()[:4], "big") % dim] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    return embed


def policy_dir(ws_root: Path, kind: str, name: str) -> Path:
    return ws_root / {"sft": P.SFT_DIR, "dpo": P.DPO_DIR, "grpo": P.GRPO_DIR, "models": P.MODELS_DIR}[kind] / name


HELDOUT = {"seed": 0, "val_ratio": 0.2}
MARKER_REPLY = "please apple river"  # the planted reward model prefers replies with "please"
ANTI_REPLY = "maybe apple river"  # … and disprefers "maybe"


def make_eval_workspace(root: Path) -> dict[str, Any]:
    """A workspace (pairs → prefixes → tokenizer → embed) with a planted reward model `judge` and three policies:
    `sft/please` (always the marker reply), `dpo/maybe` (always the anti-marker reply) and `grpo/random` (a random
    GPT: varied babble; its meta says it was trained against `judge`). ~20 s on one CPU thread."""
    import rmkit

    from katcli.pipeline.train_rm import run_train_rm, tiny_config

    pairs = rmkit.planted_pairs(300)
    ws = rmkit.make_workspace(root, pairs)
    tok = Tokenizer.load(root / P.TOKENIZER_DIR / "tokenizer.json")
    run_train_rm(ws, tiny_config(max_steps=60, max_len=64, lr=3e-3, name="judge", **HELDOUT))
    held = heldout_prompts(pairs, **HELDOUT)[:12]
    write_policy(policy_dir(root, "sft", "please"), constant_policy(tok, held, MARKER_REPLY), tok, heldout=HELDOUT)
    write_policy(policy_dir(root, "dpo", "maybe"), constant_policy(tok, held, ANTI_REPLY), tok, heldout=HELDOUT)
    write_policy(policy_dir(root, "grpo", "random"), random_policy(tok), tok, heldout=HELDOUT, rm_run="judge")
    return {"ws": ws, "pairs": pairs, "tokenizer": tok}
