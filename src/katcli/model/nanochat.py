"""Reading a nanochat base directory: its pickled tokenizer and its GPT checkpoints.

nanochat keeps `tokenizer/tokenizer.pkl` (a pickled `tiktoken.Encoding`) and
`{base,mid,chatsft}_checkpoints/<tag>/model_<step>.pt` + `meta_<step>.json` whose `model_config` holds the six GPT
fields. This is the only code in kat that unpickles anything, and only when the user runs `kat import nanochat`.
Even then the unpickler is restricted: it resolves exactly `tiktoken.core.Encoding` (to an inert placeholder that
just receives the state dict) and `_codecs.encode` (how protocol 2 spells bytes); any other global is refused, so a
crafted pickle cannot run code. Model weights are read with `weights_only=True` like every kat checkpoint.

Conversion strips the `_orig_mod.` prefix `torch.compile` adds, casts every tensor (e.g. a bf16 `wte`) to fp32 and
refuses anything whose keys or shapes differ from kat's GPT, listing the unexpected and missing keys.

This module knows nothing about kat's workspace or manifest; the import pipeline stage decides where things go.
"""

from __future__ import annotations

import codecs
import io
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from katcli.errors import KatError
from katcli.model.checkpoint import find_last_step, load_weights, read_meta
from katcli.model.gpt import GPTConfig, check_state_keys
from katcli.model.tokenizer import Tokenizer

SOURCES: dict[str, str] = {"base": "base_checkpoints", "mid": "mid_checkpoints", "sft": "chatsft_checkpoints"}
COMPILE_PREFIX = "_orig_mod."
_TAG_RE = re.compile(r"^d(\d+)$")


@dataclass
class NanochatModel:
    """A nanochat checkpoint converted to kat's types, with where it came from."""

    config: GPTConfig
    state: dict[str, torch.Tensor]
    tokenizer: Tokenizer
    source: str
    tag: str
    step: int
    model_path: Path
    meta_path: Path
    tokenizer_path: Path
    nanochat_meta: dict[str, Any]


def locate_checkpoint(base_dir: Path, source: str, tag: str | None, step: int | None) -> tuple[str, int, Path]:
    """(tag, step, checkpoint directory) for a source; the tag defaults to the deepest `d<N>`, the step to the
    latest."""
    if source not in SOURCES:
        raise KatError(f"unknown nanochat source {source!r}", hint=f"--source must be one of {', '.join(SOURCES)}")
    root = base_dir / SOURCES[source]
    if not root.is_dir():
        have = [s for s, d in SOURCES.items() if (base_dir / d).is_dir()]
        hint = (f"this directory has {', '.join(SOURCES[s] + '/' for s in have)}: pass "
                f"{' or '.join('--source ' + s for s in have)}" if have else "check BASE_DIR and --source")
        raise KatError(f"no {SOURCES[source]}/ in the nanochat directory", file=str(base_dir), hint=hint)
    tags = sorted(p.name for p in root.iterdir() if p.is_dir())
    if tag is None:
        if not tags:
            raise KatError("no model tags (e.g. d20/) found", file=str(root))
        depths = sorted((int(m.group(1)), t) for t in tags if (m := _TAG_RE.match(t)))
        if depths:
            tag = depths[-1][1]
        elif len(tags) == 1:
            tag = tags[0]
        else:
            raise KatError(f"several model tags ({', '.join(tags)}) and none like d<N>", hint="choose one with --tag")
    directory = root / tag
    if not directory.is_dir():
        raise KatError(f"model tag {tag!r} not found", file=str(root), hint=f"available: {', '.join(tags) or 'none'}")
    if step is None:
        step = find_last_step(directory)
    elif not (directory / f"model_{step:06d}.pt").is_file():
        steps = sorted(int(p.name[6:-3]) for p in directory.glob("model_*.pt") if p.name[6:-3].isdigit())
        raise KatError(
            f"no checkpoint for step {step}",
            file=str(directory),
            hint=f"available steps: {', '.join(map(str, steps)) or 'none'}; or omit --step for the latest",
        )
    return tag, step, directory


def read_nanochat(
    base_dir: str | Path, *, source: str = "sft", tag: str | None = None, step: int | None = None
) -> NanochatModel:
    """Read and convert a nanochat model and its tokenizer (unpickling `tokenizer.pkl`, restricted)."""
    base = Path(base_dir)
    if not base.is_dir():
        raise KatError(
            "nanochat base directory not found", file=str(base),
            hint="pass nanochat's base directory, the one holding tokenizer/ and base_checkpoints/ (or mid_, sft_)",
        )
    tag, step, directory = locate_checkpoint(base, source, tag, step)
    model_path = directory / f"model_{step:06d}.pt"
    meta_path = directory / f"meta_{step:06d}.json"
    meta = read_meta(meta_path)
    if not isinstance(meta.get("model_config"), dict):
        raise KatError("nanochat meta has no model_config object", file=str(meta_path))
    config = GPTConfig.from_dict(meta["model_config"])
    raw = load_weights(model_path)
    if not isinstance(raw, dict):
        raise KatError("nanochat checkpoint is not a state dict", file=str(model_path))
    state = convert_state_dict(raw, config, source=str(model_path))
    tok_path = base / "tokenizer" / "tokenizer.pkl"
    tokenizer = unpickle_tokenizer(tok_path)
    if tokenizer.vocab_size > config.vocab_size:
        raise KatError(
            f"tokenizer has {tokenizer.vocab_size} ids but the model only {config.vocab_size}",
            file=str(tok_path),
            hint="the tokenizer does not belong to this model",
        )
    return NanochatModel(
        config=config,
        state=state,
        tokenizer=tokenizer,
        source=source,
        tag=tag,
        step=step,
        model_path=model_path,
        meta_path=meta_path,
        tokenizer_path=tok_path,
        nanochat_meta=meta,
    )


def convert_state_dict(
    state: dict[str, Any], config: GPTConfig, *, source: str | None = None
) -> dict[str, torch.Tensor]:
    """Strip `_orig_mod.`, cast to fp32 and check keys/shapes against kat's GPT for `config`."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise KatError(f"nanochat checkpoint entry {key!r} is not a tensor", file=source)
        name = key[len(COMPILE_PREFIX) :] if key.startswith(COMPILE_PREFIX) else key
        out[name] = value.detach().to(torch.float32)
    check_state_keys(config, out, source=source)
    return out


class _EncodingState:
    """Stands in for `tiktoken.core.Encoding` while unpickling: it only collects the state dict."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("tiktoken.core", "Encoding"):
            return _EncodingState
        if (module, name) == ("_codecs", "encode"):
            return codecs.encode
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a nanochat tokenizer")


def unpickle_tokenizer(path: Path) -> Tokenizer:
    """Convert nanochat's pickled `tiktoken.Encoding` to kat's Tokenizer without executing arbitrary pickle code."""
    if not path.is_file():
        raise KatError("nanochat tokenizer not found", file=str(path), hint="expected tokenizer/tokenizer.pkl")
    try:
        obj = _RestrictedUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as exc:
        raise KatError(f"cannot read the nanochat tokenizer: {exc}", file=str(path)) from exc
    state = obj.state if isinstance(obj, _EncodingState) else None
    if not isinstance(state, dict) or not {"pat_str", "mergeable_ranks", "special_tokens"} <= set(state):
        raise KatError(
            "nanochat tokenizer.pkl does not hold a custom tiktoken Encoding",
            file=str(path),
            hint="kat converts tokenizers trained by nanochat's tok_train.py",
        )
    ranks = state["mergeable_ranks"]
    specials = state["special_tokens"]
    if not isinstance(ranks, dict) or not all(isinstance(k, bytes) and isinstance(v, int) for k, v in ranks.items()):
        raise KatError("nanochat tokenizer ranks are not bytes → int", file=str(path))
    if not isinstance(specials, dict) or not all(
        isinstance(k, str) and isinstance(v, int) for k, v in specials.items()
    ):
        raise KatError("nanochat tokenizer special tokens are not str → int", file=str(path))
    return Tokenizer(str(state["pat_str"]), ranks, specials)
