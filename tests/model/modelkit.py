"""Test kit for the model tests: a small trained tokenizer, tiny random GPTs, a nanochat directory writer.

Deliberately not a conftest.py: several conftest modules on sys.path collide under the name `conftest`
(a conftest here would shadow the root one). Test modules here `from modelkit import ...` the fixtures and
helpers they use; tests elsewhere load this file by path.
"""

from __future__ import annotations

import pytest
import torch

from katcli.model.gpt import GPT, GPTConfig
from katcli.model.tokenizer import Tokenizer

CORPUS = [
    "Hello world! The quick brown fox jumps over the lazy dog.",
    "Can you help me write a Python function? def add(a, b):\n    return a + b\n",
    "Numbers like 12345 and 2024-01-31 should split into pairs of digits.",
    "Unicode: café, naïve, Straße, 日本語のテキスト, emoji 😀🚀 and more.",
    "Human: How do I bake bread? Assistant: Mix flour, water, salt and yeast.",
    "for (int i = 0; i < n; ++i) { total += values[i]; }",
]


def corpus(repeat: int = 30) -> list[str]:
    return [f"{text} #{i % 7}" for i in range(repeat) for text in CORPUS]


@pytest.fixture(autouse=True)
def one_torch_thread():
    # Tiny models gain nothing from intra-op threads, and on 2 shared cores oversubscription makes a 6 ms training
    # step take 300 ms. Restored afterwards so other test packages keep their setting.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    return Tokenizer.train(corpus(), 400)


def randomize(model: GPT, seed: int = 0, std: float = 0.5) -> GPT:
    """nanochat's init zeroes lm_head and output projections (uniform logits); tests need informative weights."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model


def tiny_config(vocab_size: int = 400, **kw: int) -> GPTConfig:
    base = dict(sequence_len=64, vocab_size=vocab_size, n_layer=2, n_head=2, n_kv_head=2, n_embd=64)
    base.update(kw)
    return GPTConfig(**base)


@pytest.fixture
def tiny_model(tokenizer: Tokenizer) -> GPT:
    return randomize(GPT(tiny_config(tokenizer.vocab_size)), seed=1).eval()


def write_nanochat_dir(
    base,
    model: GPT,
    tokenizer: Tokenizer,
    *,
    source_dir: str = "chatsft_checkpoints",
    tag: str = "d2",
    step: int = 700,
    compiled: bool = False,
    bf16_wte: bool = False,
    state_edit=None,
):
    """Lay out a nanochat base dir the way nanochat writes it: a pickled tiktoken Encoding and torch.save'd weights."""
    import json
    import pickle

    (base / "tokenizer").mkdir(parents=True, exist_ok=True)
    with open(base / "tokenizer" / "tokenizer.pkl", "wb") as f:
        pickle.dump(tokenizer.enc, f)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    if bf16_wte:
        state["transformer.wte.weight"] = state["transformer.wte.weight"].bfloat16()
    if state_edit is not None:
        state_edit(state)
    if compiled:
        state = {f"_orig_mod.{k}": v for k, v in state.items()}
    ckpt = base / source_dir / tag
    ckpt.mkdir(parents=True, exist_ok=True)
    torch.save(state, ckpt / f"model_{step:06d}.pt")
    meta = {"step": step, "val_bpb": 0.9, "model_config": model.config.to_dict(), "user_config": {"depth": 2}}
    (ckpt / f"meta_{step:06d}.json").write_text(json.dumps(meta, indent=2))
    return base

