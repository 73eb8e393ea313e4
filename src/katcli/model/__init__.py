"""kat's model stack: tokenizer, nanochat-style GPT, checkpoints and the sampling engine.

    from katcli.model import Tokenizer, GPT, GPTConfig, Engine, save_checkpoint, load_checkpoint

Names resolve lazily (PEP 562), so `import katcli.model` does not import torch, tiktoken or rustbpe until a name is
used. Nothing under `kat --help` imports this package. This package knows nothing about the workspace or the CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Tokenizer": "katcli.model.tokenizer",
    "SPECIAL_TOKENS": "katcli.model.tokenizer",
    "GPT": "katcli.model.gpt",
    "GPTConfig": "katcli.model.gpt",
    "KVCache": "katcli.model.kv_cache",
    "Engine": "katcli.model.engine",
    "SamplingConfig": "katcli.model.engine",
    "Generation": "katcli.model.engine",
    "Checkpoint": "katcli.model.checkpoint",
    "save_checkpoint": "katcli.model.checkpoint",
    "load_checkpoint": "katcli.model.checkpoint",
    "load_model": "katcli.model.checkpoint",
    "find_last_step": "katcli.model.checkpoint",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from katcli.model.checkpoint import Checkpoint, find_last_step, load_checkpoint, load_model, save_checkpoint
    from katcli.model.engine import Engine, Generation, SamplingConfig
    from katcli.model.gpt import GPT, GPTConfig
    from katcli.model.kv_cache import KVCache
    from katcli.model.tokenizer import SPECIAL_TOKENS, Tokenizer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'katcli.model' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
