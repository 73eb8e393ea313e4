"""Training run directories of any objective: which files a step has, saving, pruning, clearing, reading metas.

A run directory (`rm_checkpoints/<name>/`, `sft_checkpoints/<name>/`, …) holds, for the latest saved step only,
nanochat's trio `model_{step:06d}.pt`, `meta_{step:06d}.json` and `optim_{step:06d}.pt` (optimizer state, the sample
stream's position and the torch RNG state: everything `--resume` needs), plus `tokenizer.json` (so the directory is
self-contained) and `metrics.jsonl`. Older steps are removed once a newer one is safely on disk. The files are
written atomically by `katcli.model.checkpoint`. Every meta names its `kind`, so a reward model is never mistaken
for a policy or the other way round.

Policy runs (SFT, DPO, GRPO) save a plain GPT state dict: the same format `kat import nanochat` writes, so any of
them is an `--init` for any later stage. This module knows file names and kinds; not the workspace or the loop.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from katcli.errors import KatError
from katcli.model.checkpoint import (
    Checkpoint,
    checkpoint_paths,
    find_last_step,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)
from katcli.model.gpt import GPT, GPTConfig
from katcli.model.hf import EXPORT_FILES, TOKENIZER_FILES
from katcli.train.metrics_log import METRICS_FILE

TOKENIZER_FILE = "tokenizer.json"
RM_KIND = "kat-reward-model"
POLICY_KIND = "kat-policy"
_STEP_FILE = re.compile(r"^(model|meta|optim)_(\d+)\.(pt|json)$")
_HEAD_KEY = "reward_head.weight"
# Besides the step files: the metrics log, the tokenizer and, for a Hugging Face backbone, its save_pretrained files.
_RUN_FILES = frozenset({METRICS_FILE, TOKENIZER_FILE, *EXPORT_FILES, *TOKENIZER_FILES})  # a reward model's state is a GPT's plus this key (katcli.train.reward_model)


def has_checkpoint(directory: Path) -> bool:
    return directory.is_dir() and any(_STEP_FILE.match(p.name) for p in directory.iterdir())


def step_files(directory: Path, step: int) -> list[Path]:
    return [p for p in checkpoint_paths(directory, step).values() if p.is_file()]


def save_step(
    directory: Path, step: int, state: dict[str, torch.Tensor], meta: dict[str, Any], optim_state: dict[str, Any]
) -> list[Path]:
    """Write one step atomically, then delete every other step's files; returns the files of this step."""
    save_checkpoint(directory, step, state, meta, optim_state)
    keep = {p.name for p in checkpoint_paths(directory, step).values()}
    for p in directory.iterdir():
        if _STEP_FILE.match(p.name) and p.name not in keep:
            p.unlink(missing_ok=True)
    return step_files(directory, step)


def clear_run(directory: Path) -> None:
    """Remove a previous run's checkpoints and logs before a fresh (non-resumed) run writes its own."""
    if not directory.is_dir():
        return
    for p in directory.iterdir():
        if _STEP_FILE.match(p.name) or p.name in _RUN_FILES:
            p.unlink(missing_ok=True)


def read_run_meta(
    directory: Path, kinds: Sequence[str], *, step: int | None = None, hint: str
) -> tuple[int, dict[str, Any]]:
    """The step and meta of a run's checkpoint (the latest step by default), refusing other kinds."""
    ckpt_step = find_last_step(directory) if step is None else step
    path = checkpoint_paths(directory, ckpt_step)["meta"]
    meta = read_meta(path)
    if meta.get("kind") not in kinds:
        what = " or ".join(_KIND_NAMES.get(k, k) for k in kinds)
        found = meta.get("kind")
        raise KatError(
            f"not a {what} checkpoint" + (f" (it is a {_KIND_NAMES.get(found, found)})" if found else ""),
            file=str(path),
            hint=hint,
        )
    return ckpt_step, meta


_KIND_NAMES = {RM_KIND: "kat reward-model", POLICY_KIND: "kat policy"}


def load_gpt(directory: Path, *, step: int | None = None) -> tuple[GPT, Checkpoint]:
    """The GPT of a kat policy / imported-nanochat / reward-model checkpoint (a reward head is dropped)."""
    ckpt = load_checkpoint(directory, step, device="cpu")
    meta_path = checkpoint_paths(directory, ckpt.step)["meta"]
    if "model_config" not in ckpt.meta:
        raise KatError(
            "checkpoint meta has no model_config", file=str(meta_path),
            hint="pass a GPT checkpoint directory (model_<step>.pt + meta_<step>.json written by kat)",
        )
    config = GPTConfig.from_dict(ckpt.meta["model_config"])
    body = {k: v.float() for k, v in ckpt.model_state.items() if k != _HEAD_KEY}
    source = str(checkpoint_paths(directory, ckpt.step)["model"])
    return GPT.from_state_dict(config, body, source=source), ckpt


def run_tokenizer_path(directory: Path) -> Path | None:
    """The tokenizer shipped with a run or an imported model (`tokenizer.json` or `tokenizer/tokenizer.json`)."""
    for cand in (directory / TOKENIZER_FILE, directory / "tokenizer" / TOKENIZER_FILE):
        if cand.is_file():
            return cand
    return None


# ---------------------------------------------------------------------------------------------------- HF backbones


def _hf_meta_flags(directory: Path) -> dict[str, Any]:
    try:
        step = find_last_step(directory)
        return read_meta(checkpoint_paths(directory, step)["meta"]).get("config", {})
    except KatError:
        return {}


def load_run_tokenizer(directory: Path) -> Any:
    """The tokenizer a run was trained with: kat's own, or (an HF backbone's run) the adapter over its saved one."""
    from katcli.model import hf as H
    from katcli.model.tokenizer import Tokenizer

    if not H.is_hf_dir(directory):
        path = run_tokenizer_path(directory)
        if path is None:
            raise KatError("no tokenizer.json in the run directory", file=str(directory), hint="re-run the stage")
        return Tokenizer.load(path)
    from transformers import AutoConfig

    trust = bool(_hf_meta_flags(directory).get("trust_remote_code", False))
    encoder = H.is_reward_dir(directory) and H.is_encoder(AutoConfig.from_pretrained(str(directory), trust_remote_code=trust))
    return H.load_tokenizer(directory, encoder=encoder, chat_template=None, trust_remote_code=trust)


def _run_source(directory: Path) -> Any:
    from katcli.model.hf import HFSource

    return HFSource(str(directory), "run", str(directory), trust_remote_code=bool(_hf_meta_flags(directory).get("trust_remote_code")))


def load_policy(directory: Path, *, step: int | None = None) -> tuple[Any, Any]:
    """(policy module, tokenizer) of a policy run: kat's GPT, or an HF causal LM with the step's weights."""
    from katcli.model import hf as H
    from katcli.model import hf_models as M

    tokenizer = load_run_tokenizer(directory)
    if not H.is_hf_dir(directory):
        return load_gpt(directory, step=step)[0], tokenizer
    policy = M.load_policy(directory, _run_source(directory), seed=0)
    ckpt = load_checkpoint(directory, step, device="cpu")
    policy.load_checkpoint_state({k: v.float() for k, v in ckpt.model_state.items()})
    return policy, tokenizer


def load_hf_reward_model(directory: Path, state: dict[str, torch.Tensor]) -> Any:
    """An HF-backbone reward model of a run directory, with the given step's weights."""
    from katcli.model import hf_models as M

    rm = M.load_reward_model(directory, _run_source(directory), load_run_tokenizer(directory), seed=0)
    rm.load_checkpoint_state({k: v.float() for k, v in state.items()})
    return rm


def load_policy_model(directory: Path, *, step: int | None = None) -> Any:
    """The policy module of a run (kat's GPT or an HF causal LM) at `step`, without needing its tokenizer."""
    from katcli.model.hf import is_hf_dir

    if is_hf_dir(directory):
        return load_policy(directory, step=step)[0]
    return load_gpt(directory, step=step)[0]
