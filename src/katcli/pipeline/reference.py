"""The frozen reference policy of DPO and GRPO (`--ref`): which checkpoint, whether it fits, and DPO's cached log-probs.

A reference must be a policy checkpoint (a kat policy run, an imported nanochat model, or a Hugging Face causal LM
as it is, `hf:NAME|DIR`; never a reward model), with the policy's tokenizer and vocabulary: both objectives compare
the two models' log-probs token by token (DPO's log-ratios, GRPO's KL term). For an `hf:` reference that means the
same token → id map as the policy's tokenizer (a chat template is irrelevant: the reference reads the policy's
ids) and as many token ids. `policy_checkpoint` checks what a directory holds; `resolve_reference` resolves a
`--ref` argument by the one run-name-or-path rule (or `hf:`, by `katcli.pipeline.hf_source`), checks it against the
policy and records its files as inputs; `ReferenceCheckpoint.load` gives the frozen module.

DPO's reference is `--ref` or the starting policy itself, identified by the sha256 of its weights
(`resolve_dpo_reference`). `reference_logps` gives the summed reply log-probs of every encoded pair: this run's
cache when its key still holds, another DPO run's cache with the same key (copied and recorded as an input), or one
pass of the reference model (`katcli.train.ref_cache`; under --fsdp sharded like the policy), so the reference is
never in memory while the policy trains. The key names the device, compute dtype and batch size of that pass
(`numerics`, `reference_batch_size`): they change the numbers' last bits. `heldout_reference_logps` serves
`kat eval rm`, which reads a DPO run as an implicit reward model; it never writes.

This module knows checkpoints' metas, the workspace's runs, DPO run directories and the cache key; not objectives
or losses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from katcli.errors import KatError
from katcli.model.run_meta import AS_IS_KIND, POLICY_KINDS, RM_KIND, RunMeta
from katcli.pipeline.stage import record_input
from katcli.progress import ProgressFn
from katcli.workspace import Workspace
from katcli.workspace import paths as P

if TYPE_CHECKING:
    from katcli.pipeline.training import Prepared
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
        from katcli.model.hf import weights_sha256
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


# ---------------------------------------------------------------------------------------------------- DPO


STAGE = "dpo"


@dataclass
class DPOReference:
    directory: Path | None  # None: the starting model itself (a fresh --depth model or an hf: --init)
    step: int | None
    sha256: str
    is_init: bool
    hf: dict[str, Any] | None = None  # `--ref hf:NAME|DIR`: its source (katcli.model.hf.HFSource)

    def to_json(self, ws: Workspace) -> dict[str, Any]:
        from katcli.pipeline.runs import recorded_path

        path = recorded_path(ws, self.directory) if self.directory is not None else None
        out = {"path": path, "step": self.step, "sha256": self.sha256, "is_init": self.is_init}
        return out if self.hf is None else {**out, "hf": self.hf}


def resolve_dpo_reference(prep: Prepared) -> DPOReference:
    """The reference model (`--ref`, else the starting model), checked against the policy, its inputs recorded."""
    import hashlib

    from katcli.model.checkpoint import checkpoint_paths
    from katcli.workspace.hashing import sha256_file

    cfg = prep.cfg
    if cfg.ref is None:
        if prep.lora is not None:  # the policy with its adapters off: the base and the adapters merged into it
            return DPOReference(prep.init_dir, prep.init_info.get("step"), _lora_reference_sha(prep), True)
        if prep.init_dir is None:  # --depth N: the reference is the fresh model itself
            digest = hashlib.sha256()
            for k, v in sorted(prep.model.state_dict().items()):
                digest.update(k.encode())
                digest.update(v.detach().cpu().contiguous().numpy().tobytes())
            return DPOReference(None, None, digest.hexdigest(), True)
        step = int(prep.init_info["step"])
        return DPOReference(prep.init_dir, step, sha256_file(checkpoint_paths(prep.init_dir, step)["model"]), True)
    ref = resolve_reference(prep, cfg.ref)
    if ref.hf is not None:  # the same hf: model as --init: its weights are the starting model's
        init_src = prep.init_info.get("hf") if prep.init_dir is None else None
        same = init_src is not None and all(init_src.get(k) == ref.hf[k] for k in ("location", "revision"))
    else:
        same = prep.init_dir is not None and prep.init_dir.resolve() == ref.directory.resolve()
        same = same and ref.step == prep.init_info["step"]
    return DPOReference(ref.directory, ref.step, ref.weights_sha256(), same, hf=ref.hf)


def _lora_reference_sha(prep: Prepared) -> str:
    """A LoRA policy's reference identity: its base's weights and every adapter merged into them, in order."""
    import hashlib

    from katcli.model.lora import ADAPTER_WEIGHTS
    from katcli.workspace.hashing import sha256_file

    lora = prep.lora or {}
    digest = hashlib.sha256(f"lora-reference\0{lora['base']['weights_sha256']}".encode())
    for d in prep.model.__dict__.get("_base_adapters", []):
        digest.update(f"\0{sha256_file(d / ADAPTER_WEIGHTS)}".encode())
    return digest.hexdigest()


def reference_batch_size(micro_batch_size: int) -> int:
    """Pairs per forward of the reference pass (part of the cache key: padding changes the numbers' last bits)."""
    return max(micro_batch_size, 8)


def numerics(device: Any, dtype: Any) -> dict[str, str]:
    """The cache key's `device` and `dtype` fields for computing on `device` in `dtype` (None: its --dtype auto)."""
    from katcli.devices import device_label, dtype_name, resolve_dtype

    chosen = dtype if dtype is not None else resolve_dtype("auto", device)
    return {"device": device_label(device), "dtype": dtype_name(chosen)}


def reference_pass(prep: Prepared, enc: Any, ref: DPOReference) -> Any:
    """One pass of the reference over every encoded pair (`RefLogps`), computed by the ranks together."""
    import copy

    import numpy as np

    from katcli.model.gpt import set_compute_dtype
    from katcli.train.batching import eval_batches
    from katcli.train.fsdp import shard_model
    from katcli.train.ref_cache import compute_ref_logps
    from katcli.train.seq_scoring import model_logprob_fn

    dist = prep.dist
    # The starting model is still untrained here (resume loads its weights after the build), so with no --ref
    # it is the reference itself; a --ref model is loaded only for this pass and freed with this frame. Under
    # --fsdp the reference is sharded for the pass (a copy of the starting model, which the loop shards later):
    # each GPU holds 1/world of it, never the whole model. Sharding does not change the numbers (each forward
    # gathers the same fp32 weights), so the cache key does not name it.
    sharded = prep.cfg.fsdp and dist.distributed
    if ref.is_init:
        model = copy.deepcopy(prep.model) if sharded else prep.model
    else:
        model = load_reference_model(ref.directory, ref.step, ref.hf)
    set_compute_dtype(model, prep.compute_dtype)
    if sharded:
        shard_model(model.requires_grad_(False), device=dist.device, world_size=dist.world_size)
    else:
        model.to(dist.device)
    if ref.is_init and prep.lora is not None:  # the policy with its adapters off (one copy of the weights)
        from katcli.model.lora import WithoutAdapters

        model = WithoutAdapters(prep.model)
    batches = eval_batches(enc, np.arange(len(enc)), batch_size=reference_batch_size(prep.micro_batch_size),
                           pad_id=prep.tokenizer.pad_token_id)
    was_training = model.training
    model.eval()
    score = model_logprob_fn(model, dist.device)
    try:
        return compute_ref_logps(
            len(enc), batches, (lambda mb: _released(model, score(mb))) if sharded else score, dist=dist,
            progress=prep.progress, lockstep=sharded,
        )
    finally:
        model.train(was_training)


def reference_logps(prep: Prepared, enc: Any, ref: DPOReference, out_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The reference log-probs of every encoded pair: this run's cache, another run's matching one, or computed."""
    from katcli.pipeline.runs import list_runs
    from katcli.train.ref_cache import (
        RefCacheKey,
        cache_files,
        cached_or_computed,
        load_ref_logps,
        save_ref_logps,
    )
    from katcli.workspace.hashing import sha256_file

    cfg = prep.cfg
    dist = prep.dist
    batch_size = reference_batch_size(prep.micro_batch_size)
    key = RefCacheKey(
        reference_sha256=ref.sha256, pairs_sha256=sha256_file(prep.ws.abs(P.PAIRS)),
        tokenizer_sha256=prep.tokenizer.sha256(), max_len=cfg.max_len,
        max_response_len=cfg.resolved_max_response_len, batch_size=batch_size,
        **numerics(dist.device, prep.compute_dtype),
    )
    info: dict[str, Any] = {"key": key.to_json()}
    # Another run's cache with the same key holds the same numbers: copy it rather than run the reference again.
    own = load_ref_logps(out_dir, key, n_pairs=len(enc))
    if own.logps is None:
        for name in list_runs(prep.ws, STAGE):
            other = prep.ws.abs(f"{P.DPO_DIR}/{name}")
            if other == out_dir:
                continue
            try:
                found = load_ref_logps(other, key, n_pairs=len(enc))
            except KatError:  # another run's broken cache is that run's problem
                continue
            if found.logps is not None:
                for path in cache_files(other):  # the copied numbers are an input of this run
                    record_input(prep.ws, prep.run, path)
                if dist.is_main:
                    save_ref_logps(out_dir, key, found.logps)
                info.update(state="reused", reused_from=prep.ws.rel(other))
                return found.logps, info

    logps, found = cached_or_computed(out_dir, key, len(enc), lambda: reference_pass(prep, enc, ref),
                                      write=dist.is_main)
    if found.logps is not None:
        info["state"] = "cached"
    else:
        info["state"] = "computed"
        if found.state == "stale":
            info["recomputed_because"] = found.reason
            prep.notes.append(f"recomputed the reference log-probs: {found.reason}")
    return logps, info


def _released(model: Any, result: Any) -> Any:
    """`result` of a sharded reference's forward, after freeing the weights its root kept gathered."""
    from katcli.train.fsdp import release

    release(model)
    return result


def heldout_reference_logps(
    ws: Workspace,
    name: str,
    directory: Path,
    meta: Any,
    *,
    pairs_sha256: str | None,
    heldout_index: Any,
    enc: Any,
    batch_size: int,
    pad_id: int,
    device: Any,
    progress: ProgressFn,
    notes: list[str],
) -> Any:
    """A DPO run's reference log-probs of the held-out pairs (`enc` = those pairs, in `heldout_index` order).

    From the run's cache when its key still holds for the current pairs; otherwise recomputed from the recorded
    reference, without writing (evaluation is read-only), and a note says so — only if that reference's weights
    are still the ones the run was trained against (same sha256).
    """
    import numpy as np

    from katcli.model.checkpoint import checkpoint_paths
    from katcli.model.hf import is_hf_dir
    from katcli.model.hf import weights_sha256
    from katcli.train.batching import eval_batches
    from katcli.train.ref_cache import RefCacheKey, compute_ref_logps, load_ref_logps
    from katcli.train.seq_scoring import model_logprob_fn
    from katcli.workspace.hashing import sha256_file

    # The policy is scored here on `device` in its default precision: the reference numbers must come from the
    # same, or policy − reference carries the precision gap (a cache from another device or dtype is recomputed).
    key = replace(RefCacheKey.from_json(meta.extra["ref_cache"]["key"]), **numerics(device, None))
    if key.pairs_sha256 == pairs_sha256:
        found = load_ref_logps(directory, key)
        if found.logps is not None:
            return found.logps.subset(heldout_index)
        reason = found.reason
    else:
        reason = "the pairs file changed since the run"
    recorded = meta.reference or {}
    ref_path = recorded.get("path")
    if ref_path is None:
        raise KatError(
            f"{name}: its cached reference log-probs cannot be used ({reason}) and its reference was a fresh "
            "--depth model that was never saved",
            file=str(directory / "ref_logps.json"),
            hint=f"re-run `kat train dpo --name {directory.name}`",
        )
    ref_dir = Path(ref_path) if Path(ref_path).is_absolute() else ws.abs(ref_path)
    ref_step, hf = recorded.get("step"), recorded.get("hf")
    if hf is not None:  # an hf: reference: its weights as they are now
        ref_file = ref_dir / "config.json"
        current = weights_sha256(ref_dir) if is_hf_dir(ref_dir) else None
    else:
        ref_file = checkpoint_paths(ref_dir, ref_step)["model"]
        current = sha256_file(ref_file) if ref_file.is_file() else None
    if current != key.reference_sha256:
        raise KatError(
            f"{name}: its cached reference log-probs cannot be used ({reason}) and its reference is no longer the "
            "model it was trained against",
            file=str(ref_file),
            hint=f"re-run `kat train dpo --name {directory.name}` against the current reference",
        )
    model = load_reference_model(ref_dir, ref_step, hf)
    model.to(device).eval()
    notes.append(f"{name}: recomputed the held-out reference log-probs from {ref_path} ({reason})")
    batches = eval_batches(enc, np.arange(len(enc)), batch_size=batch_size, pad_id=pad_id)
    return compute_ref_logps(len(enc), batches, model_logprob_fn(model, device), progress=progress)
