"""A policy checkpoint directory, read for sampling: its record checked to be a policy, then loaded by `load_run`.

A policy directory holds nanochat's `model_<step>.pt` + `meta_<step>.json` (a `RunMeta` with `model_config` and,
when the producer records it, `tokenizer_sha256`) and its tokenizer, either `tokenizer.json` beside the weights
(kat's training runs) or `tokenizer/tokenizer.json` (`kat import nanochat`'s `models/<name>/`). The latest step is
used. A reward-model directory is refused with a pointer to `--rm`; a `save_pretrained` directory without a meta is
a Hugging Face causal LM as it is. This module knows checkpoint file names; nothing about the workspace, the
manifest or the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from katcli.errors import KatError
from katcli.model.run_meta import RM_KIND, RunMeta

def read_policy(directory: Path) -> tuple[int, RunMeta, Path]:
    """(step, record, model file) of the latest checkpoint in `directory`, checked to be a policy."""
    from katcli.model.checkpoint import checkpoint_paths, find_last_step
    from katcli.model.hf import is_hf_dir, weights_file
    from katcli.train.run_dir import as_is_meta

    if is_hf_dir(directory) and not any(directory.glob("meta_*.json")):  # an HF model as it is (`hf:NAME|DIR`)
        return 0, as_is_meta(directory), weights_file(directory)
    step = find_last_step(directory)
    paths = checkpoint_paths(directory, step)
    meta = RunMeta.read(paths["meta"])
    if meta.kind == RM_KIND:
        raise KatError(
            "this is a reward model, not a policy",
            file=str(directory),
            hint="pass reward models with --rm; policies are sft/dpo/grpo runs, models/ imports or GPT directories",
        )
    if meta.model_config is None:
        raise KatError("checkpoint meta has no model_config", file=str(paths["meta"]), hint="it is not a GPT policy")
    return step, meta, paths["model"]


def load_policy(directory: Path, meta: RunMeta, step: int, *, device: Any = "cpu", trust_remote_code: bool = False
                ) -> Any:
    """The policy and its tokenizer (`katcli.train.run_dir.LoadedRun`); the tokenizer must be the one the meta
    records, and cover no more ids than the model has."""
    from katcli.model.hf import is_hf_dir
    from katcli.train.run_dir import load_run, run_tokenizer

    if meta.is_as_is:
        return load_run(directory, meta, device=device, trust_remote_code=trust_remote_code)
    tokenizer = run_tokenizer(directory, meta, mismatch="the tokenizer beside the policy is not the one it was "
                              "trained with", hint="restore the run's tokenizer, or re-create the run",
                              missing="no tokenizer beside the policy")
    loaded = load_run(directory, meta, step=step, device=device, tokenizer=tokenizer)
    vocab = loaded.model.config.vocab_size
    if not is_hf_dir(directory) and tokenizer.vocab_size > vocab:
        raise KatError(f"the tokenizer has {tokenizer.vocab_size} ids but the model only {vocab}",
                       file=str(directory))
    return loaded
