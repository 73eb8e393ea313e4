"""DPO's reference model: which one it is, and its reply log-probs, computed once and cached.

The reference is `--ref` (checked by `katcli.pipeline.reference`) or the starting policy itself, identified by the
sha256 of its weights. `reference_logps` gives the summed reply log-probs of every encoded pair: this run's cache
when its key still holds, another DPO run's cache with the same key (copied and recorded as an input), or one pass
of the reference model (`katcli.train.ref_cache`), so the reference is never in memory while the policy trains.
`heldout_reference_logps` serves `kat eval rm`, which reads a DPO run as an implicit reward model; it never writes.

This module knows DPO run directories, the cache key and the manifest records of the copies; not the loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from katcli.errors import KatError
from katcli.pipeline.reference import load_reference_model, resolve_reference
from katcli.pipeline.training import Prepared, record_input
from katcli.progress import ProgressFn
from katcli.workspace import Workspace
from katcli.workspace import paths as P

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
        if prep.init_dir is None:  # --depth N: the reference is the fresh model itself
            digest = hashlib.sha256()
            for k, v in sorted(prep.gpt.state_dict().items()):
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


def reference_pass(prep: Prepared, enc: Any, ref: DPOReference) -> Any:
    """One pass of the reference over every encoded pair (`RefLogps`), computed by the ranks together."""
    import numpy as np

    from katcli.train.batching import eval_batches
    from katcli.train.ref_cache import compute_ref_logps
    from katcli.train.seq_scoring import model_logprob_fn

    dist = prep.dist
    # The starting model is still untrained here (resume loads its weights after the build), so with no --ref
    # it is the reference itself; a --ref model is loaded only for this pass and freed with this frame.
    model = prep.gpt if ref.is_init else load_reference_model(ref.directory, ref.step, ref.hf)
    model.to(dist.device)
    batches = eval_batches(
        enc, np.arange(len(enc)), batch_size=max(prep.micro_batch_size, 8), pad_id=prep.tokenizer.pad_token_id
    )
    was_training = model.training
    model.eval()
    try:
        return compute_ref_logps(len(enc), batches, model_logprob_fn(model, dist.device), dist=dist,
                                 progress=prep.progress)
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
    key = RefCacheKey(
        reference_sha256=ref.sha256, pairs_sha256=sha256_file(prep.ws.abs(P.PAIRS)),
        tokenizer_sha256=prep.tokenizer.sha256(), max_len=cfg.max_len,
        max_response_len=cfg.resolved_max_response_len,
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


def heldout_reference_logps(
    ws: Workspace,
    name: str,
    directory: Path,
    meta: dict[str, Any],
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
    from katcli.pipeline.hf_source import weights_sha256
    from katcli.train.batching import eval_batches
    from katcli.train.ref_cache import RefCacheKey, compute_ref_logps, load_ref_logps
    from katcli.train.seq_scoring import model_logprob_fn
    from katcli.workspace.hashing import sha256_file

    key = RefCacheKey(**meta["ref_cache"]["key"])
    if key.pairs_sha256 == pairs_sha256:
        found = load_ref_logps(directory, key)
        if found.logps is not None:
            return found.logps.subset(heldout_index)
        reason = found.reason
    else:
        reason = "the pairs file changed since the run"
    ref_path = meta["reference"].get("path")
    if ref_path is None:
        raise KatError(
            f"{name}: its cached reference log-probs cannot be used ({reason}) and its reference was a fresh "
            "--depth model that was never saved",
            file=str(directory / "ref_logps.json"),
            hint=f"re-run `kat train dpo --name {directory.name}`",
        )
    ref_dir = Path(ref_path) if Path(ref_path).is_absolute() else ws.abs(ref_path)
    ref_step, hf = meta["reference"].get("step"), meta["reference"].get("hf")
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
