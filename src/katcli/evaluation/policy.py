"""A policy checkpoint directory: a plain GPT plus the tokenizer it speaks, loaded for sampling.

A policy directory holds nanochat's `model_<step>.pt` + `meta_<step>.json` (meta with `model_config` and, when the
producer records it, `tokenizer_sha256`) and its tokenizer, either `tokenizer.json` beside the weights (kat's
training runs) or `tokenizer/tokenizer.json` (`kat import nanochat`'s `models/<name>/`). The latest step is used.
A reward-model directory is refused with a pointer to `--rm`. Training-run metas may also carry `kind:
"kat-policy"`, `heldout` (the prompt split they were trained with) and, for GRPO, `rm.run` (the reward model they
were optimised against); this module returns the meta and leaves their meaning to the caller.

This module knows checkpoint file names; nothing about the workspace, the manifest or the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from katcli.errors import KatError
from katcli.model.hf import AS_IS_KIND as HF_BASE_KIND  # a Hugging Face causal LM evaluated as it is

KIND = "kat-policy"
REWARD_MODEL_KIND = "kat-reward-model"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer/tokenizer.json")


@dataclass
class LoadedPolicy:
    model: Any  # katcli.model.gpt.GPT, in eval mode
    tokenizer: Any  # katcli.model.tokenizer.Tokenizer
    step: int
    meta: dict[str, Any]
    model_file: Path


def policy_meta(directory: Path) -> tuple[int, dict[str, Any], Path]:
    """(step, meta, model file) of the latest checkpoint in `directory`, checked to be a policy."""
    from katcli.model.checkpoint import checkpoint_paths, find_last_step, read_meta
    from katcli.model.hf import is_hf_dir, weights_file

    if is_hf_dir(directory) and not any(directory.glob("meta_*.json")):  # an HF model as it is (`hf:NAME|DIR`)
        return 0, {"kind": HF_BASE_KIND}, weights_file(directory)
    step = find_last_step(directory)
    paths = checkpoint_paths(directory, step)
    meta = read_meta(paths["meta"])
    if meta.get("kind") == REWARD_MODEL_KIND:
        raise KatError(
            "this is a reward model, not a policy",
            file=str(directory),
            hint="pass reward models with --rm; policies are sft/dpo/grpo runs, models/ imports or GPT directories",
        )
    if "model_config" not in meta:
        raise KatError("checkpoint meta has no model_config", file=str(paths["meta"]), hint="it is not a GPT policy")
    return step, meta, paths["model"]


def policy_tokenizer_file(directory: Path) -> Path:
    for name in TOKENIZER_FILES:
        if (directory / name).is_file():
            return directory / name
    raise KatError(
        "no tokenizer beside the policy",
        file=str(directory),
        hint=f"a policy directory needs {' or '.join(TOKENIZER_FILES)} (the tokenizer it was trained with)",
    )


def load_policy(directory: Path, *, device: Any = "cpu", trust_remote_code: bool = False) -> LoadedPolicy:
    """The GPT and tokenizer of a policy directory; the tokenizer must be the one the meta records."""
    from katcli.model.checkpoint import load_model
    from katcli.model.hf import is_hf_dir
    from katcli.model.tokenizer import Tokenizer
    from katcli.train import run_dir

    step, meta, model_file = policy_meta(directory)
    tok_file = policy_tokenizer_file(directory)
    if meta.get("kind") == HF_BASE_KIND:
        from katcli.model.hf import HFSource, load_tokenizer
        from katcli.model.hf_models import load_policy as load_hf_policy

        source = HFSource(str(directory), "local", str(directory), trust_remote_code=trust_remote_code)
        hf = load_hf_policy(directory, source, seed=0)
        tokenizer = load_tokenizer(directory, encoder=False, chat_template=None, trust_remote_code=trust_remote_code)
        return LoadedPolicy(hf.to(device).eval(), tokenizer, step, meta, model_file)
    if is_hf_dir(directory):  # a Hugging Face backbone's run
        model, tokenizer = run_dir.load_policy(directory, step=step)
        if tokenizer.sha256() != meta.get("tokenizer_sha256"):
            raise KatError("the tokenizer beside the policy is not the one it was trained with", file=str(tok_file),
                           hint="restore the run's tokenizer, or re-create the run")
        return LoadedPolicy(model.to(device).eval(), tokenizer, step, meta, model_file)
    tokenizer = Tokenizer.load(tok_file)
    recorded = meta.get("tokenizer_sha256")
    if recorded is not None and tokenizer.sha256() != recorded:
        raise KatError(
            "the tokenizer beside the policy is not the one it was trained with (sha256 differs from its meta)",
            file=str(tok_file),
            hint="restore the run's tokenizer, or re-create the run",
        )
    model, _ = load_model(directory, step, device=device)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise KatError(
            f"the tokenizer has {tokenizer.vocab_size} ids but the model only {model.config.vocab_size}",
            file=str(tok_file),
        )
    return LoadedPolicy(model.eval(), tokenizer, step, meta, model_file)
