"""Run directories of any objective: which files a step has, saving, pruning, clearing; reading and loading a run.

A run directory (`rm_checkpoints/<name>/`, `sft_checkpoints/<name>/`, …) holds, for the latest saved step only,
nanochat's trio `model_{step:06d}.pt`, `meta_{step:06d}.json` and `optim_{step:06d}.pt` (optimizer state, the sample
stream's position and the torch RNG state: everything `--resume` needs), plus `tokenizer.json` (so the directory is
self-contained) and `metrics.jsonl`. Older steps are removed once a newer one is safely on disk. The files are
written atomically by `katcli.model.checkpoint`. Every meta is a `katcli.model.run_meta.RunMeta` naming its `kind`,
so a reward model is never mistaken for a policy or the other way round (`read_run`).

`load_run` is the one way a trained model is loaded (kat's GPT or a Hugging Face backbone, a policy or a reward
model, or an HF model as it is), with its tokenizer checked by the one tokenizer check (`run_tokenizer`,
`check_tokenizer`).

Policy runs (SFT, DPO, GRPO) save a plain GPT state dict: the same format `kat import nanochat` writes, so any of
them is an `--init` for any later stage. This module knows file names, kinds and model classes; not the workspace
or the loop.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from katcli.errors import KatError
from katcli.model.checkpoint import checkpoint_paths, find_last_step, load_checkpoint, save_checkpoint
from katcli.model.gpt import GPT, GPTConfig
from katcli.model.hf import EXPORT_FILES, TOKENIZER_FILES
from katcli.model.lora import ADAPTER_FILES, BASE_ADAPTERS
from katcli.model.run_meta import AS_IS_KIND, KIND_NAMES, POLICY_KIND, RM_KIND, RunMeta
from katcli.train.metrics_log import METRICS_FILE
from katcli.workspace import paths as P

TOKENIZER_FILE = P.TOKENIZER_FILE
_STEP_FILE = re.compile(r"^(model|meta|optim)_(\d+)\.(pt|json)$")
# Besides the step files: the metrics log, the tokenizer and, for a Hugging Face backbone, its save_pretrained files.
_RUN_FILES = frozenset({METRICS_FILE, TOKENIZER_FILE, *EXPORT_FILES, *TOKENIZER_FILES, *ADAPTER_FILES})


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
    import shutil

    shutil.rmtree(directory / BASE_ADAPTERS, ignore_errors=True)


def read_run(
    directory: Path, kinds: Sequence[str], *, step: int | None = None, hint: str
) -> tuple[int, RunMeta]:
    """The step and record of a run's checkpoint (the latest step by default), refusing other kinds."""
    ckpt_step = find_last_step(directory) if step is None else step
    path = checkpoint_paths(directory, ckpt_step)["meta"]
    meta = RunMeta.read(path)
    if meta.kind not in kinds:
        what = " or ".join(KIND_NAMES.get(k, k) for k in kinds)
        raise KatError(
            f"not a {what} checkpoint" + (f" (it is a {meta.kind_name})" if meta.kind else ""),
            file=str(path),
            hint=hint,
        )
    return ckpt_step, meta


def run_tokenizer_path(directory: Path) -> Path | None:
    """The tokenizer shipped with a run or an imported model (`tokenizer.json` or `tokenizer/tokenizer.json`)."""
    for cand in (directory / TOKENIZER_FILE, directory / P.TOKENIZER):
        if cand.is_file():
            return cand
    return None


def check_tokenizer(sha256: str, recorded: str | None, problem: str, *, file: Path | str, hint: str,
                    required: bool = True) -> None:
    """The one tokenizer check: a model is used only with the tokenizer its meta records (sha256). `required`:
    a meta that records none fails too (kat's runs always record one; an imported GPT may not)."""
    if recorded == sha256 or (recorded is None and not required):
        return
    raise KatError(problem, file=str(file), hint=hint)


# ---------------------------------------------------------------------------------------------------- loading


@dataclass
class LoadedRun:
    """A trained model ready to use: its module (eval mode, on the device), tokenizer and record."""

    model: Any
    tokenizer: Any  # None when loaded without one (`tokenizer=False`)
    meta: RunMeta
    directory: Path
    step: int | None  # None: an HF model as it is
    model_file: Path


def as_is_meta(directory: Path) -> RunMeta:
    """The record of an HF model used as it is (no meta file): just its kind."""
    return RunMeta(kind=AS_IS_KIND)


def load_run(
    directory: Path, meta: RunMeta | None = None, *, step: int | None = None, role: str = "policy",
    device: Any = "cpu", tokenizer: Any = True, trust_remote_code: bool = False,
) -> LoadedRun:
    """The one way a trained model is loaded: kat's GPT or an HF backbone, a policy or a reward model.

    `role` "policy" gives the generating module (a reward model's body without its head when that is what the
    directory holds), "reward" the reward model. `tokenizer`: True loads the run's own (the copy beside it, checked
    against its meta by `run_tokenizer`), a tokenizer object is used as given, False loads none. The step's files
    are read once, here; which of them may be read (the manifest) is the caller's to check before. `meta` None:
    the step's meta file (a caller that already read it to check the run passes it).
    """
    from katcli.model import hf as H

    if meta is None:  # the step's own record
        step = find_last_step(directory) if step is None else step
        meta = RunMeta.read(checkpoint_paths(directory, step)["meta"])
    if meta.is_as_is:
        from katcli.model import hf_models as M

        source = H.HFSource(**meta.hf) if meta.hf is not None else H.HFSource(
            str(directory), "local", str(directory), trust_remote_code=trust_remote_code)
        tok = None if tokenizer is False else H.load_tokenizer(
            directory, encoder=bool(meta.extra.get("encoder")) and role == "reward", chat_template=None,
            trust_remote_code=source.trust_remote_code)
        model = (M.load_reward_model(directory, source, tok, seed=0) if role == "reward"
                 else M.load_policy(directory, source, seed=0))
        return LoadedRun(model.to(device).eval(), tok, meta, directory, None, H.weights_file(directory))
    ckpt_step = find_last_step(directory) if step is None else step
    tok = run_tokenizer(directory, meta) if tokenizer is True else (tokenizer or None)
    ckpt = load_checkpoint(directory, ckpt_step, device="cpu")
    state = {k: v.float() for k, v in ckpt.model_state.items()}
    if meta.lora is not None:
        model = _adapter_model(directory, meta, role, tok)
        model.load_checkpoint_state(state)
    elif H.is_hf_dir(directory):
        from katcli.model import hf_models as M

        source = H.HFSource(str(directory), "run", str(directory), trust_remote_code=meta.trust_remote_code)
        if role == "reward":
            model: Any = M.load_reward_model(directory, source, tok or run_tokenizer(directory, meta), seed=0)
        else:
            model = M.load_policy(directory, source, seed=0)
        model.load_checkpoint_state(state)
    else:
        model = _kat_model(directory, ckpt_step, meta, state, reward=role == "reward")
    model_file = checkpoint_paths(directory, ckpt_step)["model"]
    return LoadedRun(model.to(device).eval(), tok, meta, directory, ckpt_step, model_file)


def _adapter_model(directory: Path, meta: RunMeta, role: str, tok: Any) -> Any:
    """A LoRA run's model before its own adapter state: the base (checked by sha256), the adapters of the runs it
    started from merged in, and fresh adapters of its own shape."""
    from katcli.model import hf as H
    from katcli.model import hf_models as M
    from katcli.model import lora as A

    rec = meta.lora or {}
    meta_file = checkpoint_paths(directory, find_last_step(directory))["meta"]
    base = A.base_directory(rec["base"], file=meta_file, flag=str(directory))
    source = H.HFSource(**rec["base"]["hf"])
    if meta.kind == RM_KIND and role == "reward":
        model: Any = M.load_reward_model(base, source, tok or run_tokenizer(directory, meta), seed=0)
    else:
        model = M.load_policy(base, source, seed=0)
    for earlier in A.stacked_adapters(directory)[:-1]:
        model.hf = A.merge_into(model.hf, earlier)
    A.attach(model, A.LoraSpec.from_json(rec), base_name=A.read_adapter_config(directory).get(
        "base_model_name_or_path") or "")
    return model


def _kat_model(directory: Path, step: int, meta: RunMeta, state: dict[str, torch.Tensor], *, reward: bool) -> Any:
    """kat's GPT of a checkpoint; with `reward`, the reward model (GPT + head); a reward model's head is dropped
    when its body is wanted (a policy or reward model started from it)."""
    source = str(checkpoint_paths(directory, step)["model"])
    if meta.model_config is None:
        raise KatError(
            "checkpoint meta has no model_config", file=str(checkpoint_paths(directory, step)["meta"]),
            hint="pass a GPT checkpoint directory (model_<step>.pt + meta_<step>.json written by kat)",
        )
    config = GPTConfig.from_dict(meta.model_config)
    if not reward and meta.kind != RM_KIND:
        return GPT.from_state_dict(config, state, source=source)
    from katcli.train.reward_model import HEAD_KEY, RewardModel

    gpt = GPT.from_state_dict(config, {k: v for k, v in state.items() if k != HEAD_KEY}, source=source)
    if not reward:
        return gpt
    if HEAD_KEY not in state:
        raise KatError(f"checkpoint has no {HEAD_KEY}", file=source, hint="it is not a reward model")
    rm = RewardModel(gpt)
    with torch.no_grad():
        rm.head.weight.copy_(state[HEAD_KEY])
    return rm


def run_tokenizer(
    directory: Path, meta: RunMeta, *, mismatch: str = "the tokenizer beside it is not the one it was trained with",
    hint: str = "re-run the stage", missing: str = "no tokenizer.json in the run directory",
    fallback: Path | None = None,
) -> Any:
    """The tokenizer a run was trained with: kat's own (`tokenizer.json` beside it, else `fallback`), or an HF
    backbone's adapter over its saved files; sha256-checked against the meta (`check_tokenizer`)."""
    from katcli.model import hf as H
    from katcli.model.tokenizer import Tokenizer

    file = directory / TOKENIZER_FILE
    if not H.is_hf_dir(directory):
        path = run_tokenizer_path(directory) or fallback
        if path is None:
            raise KatError(missing, file=str(directory), hint=hint)
        tok = Tokenizer.load(path)
        file = run_tokenizer_path(directory) or file
    else:
        from transformers import AutoConfig

        trust = meta.trust_remote_code
        if meta.lora is not None:  # adapters only: the base's kind is recorded
            encoder = meta.kind == RM_KIND and bool(meta.lora.get("encoder"))
        else:
            encoder = H.is_reward_dir(directory) and H.is_encoder(
                AutoConfig.from_pretrained(str(directory), trust_remote_code=trust))
        tok = H.load_tokenizer(directory, encoder=encoder, chat_template=None, trust_remote_code=trust)
    check_tokenizer(tok.sha256(), meta.tokenizer_sha256, mismatch, file=file, hint=hint,
                    required=meta.kind in (RM_KIND, POLICY_KIND))
    return tok
