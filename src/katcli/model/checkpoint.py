"""Checkpoint directories in nanochat's layout, written atomically and read without executing pickles.

A checkpoint directory holds, per step, `model_{step:06d}.pt` (a flat state dict of tensors), `meta_{step:06d}.json`
(the run's record, `katcli.model.run_meta.RunMeta`: model config, tokenizer sha256, flags, inputs, split) and optionally
`optim_{step:06d}.pt` for resuming. `.pt` files are always read with `torch.load(..., weights_only=True)`, so a file
carrying arbitrary pickled objects is refused instead of executed. Every file is written to a temporary name,
fsync'ed and `os.replace`d, so a crash never leaves a half-written checkpoint under a real name. The latest step is
found by scanning for `model_<digits>.pt`.

This module knows nothing about the workspace manifest, training loops or what the meta means beyond
`model_config`, which `load_model` turns into a plain `GPT` (a trained run of any kind is `katcli.train.run_dir.load_run`'s).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch

from katcli.errors import KatError
from katcli.model.gpt import GPT, GPTConfig
from katcli.model.run_meta import REWRITE_HINT as _REWRITE_HINT
from katcli.model.run_meta import RunMeta, read_meta
from katcli.workspace.atomic import atomic_write

_MODEL_RE = re.compile(r"^model_(\d+)\.pt$")


@dataclass
class Checkpoint:
    step: int
    model_state: dict[str, torch.Tensor]
    meta: dict[str, Any]
    optim_state: dict[str, Any] | None = None
    directory: Path = field(default_factory=Path)


def checkpoint_paths(directory: str | os.PathLike[str], step: int) -> dict[str, Path]:
    d = Path(directory)
    return {
        "model": d / f"model_{step:06d}.pt",
        "meta": d / f"meta_{step:06d}.json",
        "optim": d / f"optim_{step:06d}.pt",
    }


def save_checkpoint(
    directory: str | os.PathLike[str],
    step: int,
    model_state: Mapping[str, torch.Tensor] | torch.nn.Module,
    meta: Mapping[str, Any],
    optim_state: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write one step's files atomically; returns the paths written (model, meta and, if given, optim).

    The meta is written last, so a directory whose newest meta exists always has that step's weights beside it.
    """
    if step < 0:
        raise ValueError(f"step must be non-negative, got {step}")
    state = model_state.state_dict() if isinstance(model_state, torch.nn.Module) else dict(model_state)
    bad = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise ValueError(f"model state holds non-tensor entries: {', '.join(bad)}")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = checkpoint_paths(d, step)
    written = {"model": paths["model"]}
    with atomic_write(paths["model"]) as f:
        write_state(state, f)
    if optim_state is not None:
        with atomic_write(paths["optim"]) as f:
            torch.save(canonical(dict(optim_state)), f)
        written["optim"] = paths["optim"]
    with atomic_write(paths["meta"]) as f:
        f.write(meta_bytes(meta))
    written["meta"] = paths["meta"]
    return written


def canonical(obj: Any) -> Any:
    """The same structure with every string interned, so equal states pickle to equal bytes.

    Pickle writes a string once and then refers back to it only when it is the *same object*: the optimizer state
    of a resumed run holds strings freshly unpickled from its checkpoint, whose identities differ from those of an
    uninterrupted run, so the same tensors gave different `optim_<step>.pt` bytes. Interning makes identity follow
    equality.
    """
    if isinstance(obj, str):
        return sys.intern(obj)
    if isinstance(obj, dict):
        return {canonical(k): canonical(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [canonical(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(canonical(v) for v in obj)
    return obj


def write_state(state: Mapping[str, torch.Tensor], f: IO[bytes]) -> None:
    """Serialise a flat state dict. Detached so no autograd metadata is stored; values and dtypes are untouched
    (a bit-exact round trip)."""
    torch.save({k: v.detach() for k, v in state.items()}, f)


def meta_bytes(meta: Mapping[str, Any]) -> bytes:
    """Canonical meta JSON: sorted keys, 2-space indent, trailing newline."""
    return (json.dumps(dict(meta), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


_NOT_WEIGHTS = "cannot read checkpoint: not a PyTorch weights file"


def find_last_step(directory: str | os.PathLike[str]) -> int:
    """The highest step with a `model_<step>.pt` in `directory`."""
    d = Path(directory)
    if not d.is_dir():
        raise KatError("checkpoint directory not found", file=str(d),
                       hint="train or import a model first, or check the path")
    steps = [int(m.group(1)) for p in d.iterdir() if (m := _MODEL_RE.match(p.name))]
    if not steps:
        raise KatError("no model_<step>.pt checkpoint found", file=str(d), hint="train or import a model first")
    return max(steps)


def load_checkpoint(
    directory: str | os.PathLike[str],
    step: int | None = None,
    *,
    device: str | torch.device = "cpu",
    load_optim: bool = False,
) -> Checkpoint:
    """Read one step (the latest if `step` is None) with `weights_only=True` loads."""
    d = Path(directory)
    step = find_last_step(d) if step is None else step
    paths = checkpoint_paths(d, step)
    state = load_weights(paths["model"], device=device)
    bad = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor)) if isinstance(state, dict) else None
    if not isinstance(state, dict) or bad:
        raise KatError(
            "checkpoint is not a flat state dict of tensors" + (f" (non-tensors: {', '.join(bad)})" if bad else ""),
            file=str(paths["model"]), hint=_REWRITE_HINT,
        )
    meta = read_meta(paths["meta"])
    optim = None
    if load_optim:
        if not paths["optim"].is_file():
            raise KatError("optimizer state not found", file=str(paths["optim"]), hint="start without resuming")
        optim = load_weights(paths["optim"], device=device)
    return Checkpoint(step=step, model_state=state, meta=meta, optim_state=optim, directory=d)


def load_model(
    directory: str | os.PathLike[str], step: int | None = None, *, device: str | torch.device = "cpu"
) -> tuple[GPT, Checkpoint]:
    """Build the `GPT` described by the meta's `model_config` and load the step's weights into it (strictly).

    The model's fp32 parameters are the loaded tensors themselves (no second copy in memory), so the returned
    `Checkpoint.model_state` shares storage with the model wherever the file already held fp32.
    """
    ckpt = load_checkpoint(directory, step, device="cpu")
    meta_path = checkpoint_paths(directory, ckpt.step)["meta"]
    model_config = RunMeta.from_json(ckpt.meta, file=str(meta_path)).model_config
    if model_config is None:
        raise KatError("checkpoint meta has no model_config", file=str(meta_path), hint=_REWRITE_HINT)
    config = GPTConfig.from_dict(model_config)
    model = GPT.from_state_dict(config, ckpt.model_state, source=str(checkpoint_paths(directory, ckpt.step)["model"]))
    return model.to(device), ckpt


def load_weights(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> Any:
    """`torch.load(..., weights_only=True)`, with refusals turned into KatErrors."""
    p = Path(path)
    if not p.is_file():
        raise KatError("checkpoint file not found", file=str(p), hint=_REWRITE_HINT)
    try:
        return torch.load(p, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" not in str(exc).lower():  # not a refused object: the file is just not readable
            raise KatError(_NOT_WEIGHTS, file=str(p), hint=_REWRITE_HINT) from exc
        raise KatError(
            "refusing to load a checkpoint that contains pickled Python objects beyond tensors",
            file=str(p),
            hint="kat only loads plain state dicts (torch.load weights_only=True); re-save the weights alone",
        ) from exc
    except KeyError as exc:  # the legacy (non-zip) reader on bytes that are no pickle at all, e.g. b"hello"
        raise KatError(_NOT_WEIGHTS, file=str(p), hint=_REWRITE_HINT) from exc
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise KatError(f"cannot read checkpoint: {first}", file=str(p), hint=_REWRITE_HINT) from exc
