"""The frozen reference policy of DPO and GRPO (`--ref`): which checkpoint, and whether it fits the policy.

A reference must be a policy checkpoint (a kat policy run, an imported nanochat model, or a Hugging Face causal LM
as it is, `hf:NAME|DIR`; never a reward model), with the policy's tokenizer and vocabulary: both objectives compare
the two models' log-probs token by token (DPO's log-ratios, GRPO's KL term). For an `hf:` reference that means the
same token → id map as the policy's tokenizer (a chat template is irrelevant: the reference reads the policy's
ids) and as many token ids. `policy_checkpoint` checks what a directory holds; `resolve_reference` resolves a
`--ref` argument by the one run-name-or-path rule (or `hf:`, by `katcli.pipeline.hf_source`), checks it against the
policy and records its files as inputs; `ReferenceCheckpoint.load` gives the frozen module. Caching its log-probs
is the calling stage's business.

This module knows checkpoints' metas and the workspace's runs; not objectives or losses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from katcli.errors import KatError
from katcli.model.run_meta import AS_IS_KIND, POLICY_KINDS, RM_KIND, RunMeta
POLICY_HINT = (
    "pass a policy: an SFT run (`kat train sft`), an imported model (`kat import nanochat`) or a directory holding "
    "one"
)


@dataclass(frozen=True)
class ReferenceCheckpoint:
    name: str  # as the user named it (or the directory's name)
    directory: Path
    step: int | None  # None: a Hugging Face model as it is
    meta: RunMeta
    files: dict[str, Path]  # model, meta, optim paths of that step (an HF model: its weights as "model")
    hf: dict[str, Any] | None = None  # an `hf:NAME|DIR` reference: its source, as `--init hf:` records it

    def weights_sha256(self) -> str:
        """The reference's identity in DPO's log-prob cache key."""
        from katcli.pipeline.hf_source import weights_sha256
        from katcli.workspace.hashing import sha256_file

        return weights_sha256(self.directory) if self.hf is not None else sha256_file(self.files["model"])

    def load(self) -> Any:
        """The frozen reference module: kat's GPT or an HF causal LM (a kat run's or as it is)."""
        return load_reference_model(self.directory, self.step, self.hf)


def load_reference_model(directory: Path, step: int | None, hf: dict[str, Any] | None) -> Any:
    """A frozen reference by what a run recorded of it: a kat run's policy (`load_run`), or an HF causal LM as it
    is (its source)."""
    from katcli.model.checkpoint import checkpoint_paths
    from katcli.train.run_dir import load_run

    if hf is not None:
        return load_run(directory, RunMeta(kind=AS_IS_KIND, extra={"hf": hf}), tokenizer=False).model.train()
    meta = RunMeta.read(checkpoint_paths(directory, step)["meta"])
    return load_run(directory, meta, step=step, tokenizer=False).model.train()


def policy_checkpoint(directory: Path, flag: str) -> tuple[int, RunMeta, Path]:
    """(step, record, meta file) of a policy checkpoint; a reward model or a non-checkpoint is refused."""
    from katcli.model.checkpoint import checkpoint_paths, find_last_step

    try:
        step = find_last_step(directory)
    except KatError as exc:
        raise KatError(f"{flag}: {exc.message}", file=exc.file, hint=POLICY_HINT) from None
    meta_path = checkpoint_paths(directory, step)["meta"]
    meta = RunMeta.read(meta_path)
    if meta.kind == RM_KIND:
        raise KatError(
            f"{flag} is a reward model, not a policy", file=str(meta_path),
            hint=f"{POLICY_HINT}; a reward model scores replies but cannot generate them",
        )
    if meta.kind not in POLICY_KINDS or meta.model_config is None:
        raise KatError(f"{flag} is not a policy checkpoint", file=str(meta_path), hint=POLICY_HINT)
    return step, meta, meta_path


def resolve_reference(prep: Any, value: str, *, flag: str = "--ref") -> ReferenceCheckpoint:
    """The `--ref` checkpoint, refused unless it is a policy with the policy's tokenizer and vocabulary."""
    from katcli.model.checkpoint import checkpoint_paths
    from katcli.model.hf import is_hf_ref
    from katcli.pipeline.runs import POLICY_STAGES, resolve_run
    from katcli.pipeline.stage import record_input
    from katcli.train.run_dir import check_tokenizer

    if is_hf_ref(value):
        return _hf_reference(prep, value, flag)
    name, directory = resolve_run(prep.ws, value, (*POLICY_STAGES, "rm"), flag=flag)
    step, meta, meta_path = policy_checkpoint(directory, flag)
    tok_sha, recorded = prep.tokenizer.sha256(), meta.tokenizer_sha256
    check_tokenizer(
        tok_sha, recorded, f"{flag} was trained with another tokenizer (sha256 {(recorded or '')[:12]}…) than the "
        f"policy ({tok_sha[:12]}…)", file=meta_path, hint=_same_tokens_hint(flag, "that shares the policy's tokenizer"),
        required=False,
    )
    _check_vocab(prep, int(meta.model_config.get("vocab_size", -1)), flag, meta_path)
    files = checkpoint_paths(directory, step)
    for key in ("model", "meta"):
        record_input(prep.ws, prep.run, files[key])
    return ReferenceCheckpoint(name, directory, step, meta, files)


def _same_tokens_hint(flag: str, what: str) -> str:
    return (f"the reference's log-probs are compared token by token with the policy's: pass a {flag} {what} "
            "(e.g. the --init model, the default)")


def _check_vocab(prep: Any, vocab: int, flag: str, file: Path) -> None:
    if vocab != prep.model.config.vocab_size:
        raise KatError(
            f"{flag} has {vocab} token ids but the policy has {prep.model.config.vocab_size}", file=str(file),
            hint=_same_tokens_hint(flag, "with the policy's vocabulary"),
        )


def _hf_reference(prep: Any, value: str, flag: str) -> ReferenceCheckpoint:
    """`--ref hf:NAME|DIR`: a causal LM as it is, refused unless its tokens are the policy's (ids and count)."""
    from transformers import AutoConfig, AutoTokenizer

    from katcli.model import hf as H
    from katcli.pipeline.hf_source import record_hf_inputs, resolve

    trust = bool(prep.cfg.trust_remote_code)
    d, source = resolve(value, trust_remote_code=trust, flag=flag)
    H.check_model_dir(d, trust_remote_code=trust)
    config = AutoConfig.from_pretrained(str(d), trust_remote_code=trust)
    if H.is_reward_dir(d):
        raise KatError(f"{flag} {value} is a reward model, not a policy", file=str(d / "config.json"),
                       hint=f"{POLICY_HINT}, or a Hugging Face causal LM (hf:NAME|DIR)")
    if H.is_encoder(config):
        raise KatError(f"{flag} {value}: a {config.model_type} encoder cannot be a reference policy (it is not a "
                       "causal LM)", file=str(d / "config.json"), hint="pass a decoder (Llama, Qwen, GPT-2, …)")
    policy_tok = getattr(prep.tokenizer, "tok", None)
    if policy_tok is None:
        raise KatError(
            f"{flag} {value} is a Hugging Face model but the policy is kat's GPT with kat's tokenizer",
            file=str(d), hint=f"pass a kat policy as {flag} (one with the policy's tokenizer), or start the policy "
            f"from a Hugging Face model with this one's tokenizer (e.g. --init {value})",
        )
    with H.quiet_transformers():
        ref_tok = AutoTokenizer.from_pretrained(str(d), trust_remote_code=trust)
    differs = H.vocab_difference(policy_tok, ref_tok)
    if differs is not None:
        raise KatError(f"{flag} {value} has another vocabulary than the policy: {differs}", file=str(d),
                       hint=_same_tokens_hint(flag, "that shares the policy's tokenizer"))
    _check_vocab(prep, int(config.vocab_size), flag, d / "config.json")
    record_hf_inputs(prep.ws, prep.run, d)
    weights = H.weights_file(d)
    return ReferenceCheckpoint(value, d, None, RunMeta(kind=AS_IS_KIND, extra={"hf": source.to_json()}),
                               {"model": weights}, hf=source.to_json())
