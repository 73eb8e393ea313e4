"""The `dpo` stage: direct preference optimisation of a policy against a frozen reference, into `dpo_checkpoints/`.

The policy starts from `--init` (an `sft_checkpoints/` run, an imported model under `models/`, or a directory; by
default the workspace's only SFT run) and the reference is `--ref` or that same starting model, frozen. Before the
first step the reference's summed reply log-probs of every pair (training and held-out) are computed once, with a
progress bar, and cached beside the run (`ref_logps.npy` + `ref_logps.json`, see `katcli.train.ref_cache`): the
reference model is then freed, so training holds one model. A `--resume`, a re-run, or another run whose cache
key matches (same reference weights, pairs, tokenizer, `--max-len`, `--max-response-len`) reuses the numbers; a
cache whose key differs is recomputed, and one that was modified after kat wrote it is an error.

Refused before anything slow: an `--init` or `--ref` that is a reward model, a `--ref` that is no checkpoint, and a
reference whose tokenizer or vocabulary differs from the policy's. Everything else — inputs, the held-out split,
the sampler and its ESS, resume, ranks, records — is `katcli.pipeline.training`; the loss and evaluation are
`katcli.train.objectives.dpo`. The output is a plain GPT policy checkpoint, an `--init` for any later stage.
This module knows nothing about Typer or Rich.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from katcli.errors import ConfigError, KatError
from katcli.pipeline.train_config import TrainConfig
from katcli.pipeline.training import (
    Built,
    Prepared,
    StepCallback,
    TrainingStage,
    TrainResult,
    record_input,
    run_training,
)
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P

STAGE = "dpo"
POLICY_KINDS = ("kat-policy", "nanochat")
_POLICY_HINT = (
    "DPO trains a policy: pass an SFT run (`kat train sft`), an imported model (`kat import nanochat`) or a "
    "directory holding one"
)


@dataclass(frozen=True)
class TrainDPOConfig(TrainConfig):
    """`kat train dpo`'s flags: the shared ones plus the reference and the loss."""

    ref: str | None = None
    beta: float = 0.1
    loss: str = "sigmoid"
    label_smoothing: float = 0.0
    sft_weight: float = 0.0

    def validate(self) -> None:
        super().validate()
        self.loss_config()

    def loss_config(self) -> Any:  # katcli.train.dpo_losses.DPOLossConfig (imported here: it imports torch)
        from katcli.train.dpo_losses import DPOLossConfig

        return DPOLossConfig(
            beta=self.beta, loss=self.loss, label_smoothing=self.label_smoothing, sft_weight=self.sft_weight
        )


def tiny_dpo_config(**overrides: Any) -> TrainDPOConfig:
    """A configuration that trains in well under a minute on 2 CPU cores (smoke tests), from the one SFT run."""
    base: dict[str, Any] = dict(
        max_steps=40, batch_size=16, max_len=256, lr=1e-3, val_ratio=0.2, eval_every=0, save_every=0,
        device="cpu", threads=1,
    )
    base.update(overrides)
    return TrainDPOConfig(**base)


# ---------------------------------------------------------------------------------------------------- models


def _checkpoint_meta(directory: Path, flag: str) -> tuple[int, dict[str, Any], Path]:
    """(step, meta, meta file) of a policy checkpoint; a reward model or a non-checkpoint is refused."""
    from katcli.model.checkpoint import checkpoint_paths, find_last_step, read_meta
    from katcli.train.run_dir import RM_KIND

    try:
        step = find_last_step(directory)
    except KatError as exc:
        raise KatError(f"{flag}: {exc.message}", file=exc.file, hint=_POLICY_HINT) from None
    meta_path = checkpoint_paths(directory, step)["meta"]
    meta = read_meta(meta_path)
    if meta.get("kind") == RM_KIND:
        raise KatError(
            f"{flag} is a reward model, not a policy", file=str(meta_path),
            hint=f"{_POLICY_HINT}; a reward model scores replies but cannot generate them",
        )
    if meta.get("kind") not in POLICY_KINDS or "model_config" not in meta:
        raise KatError(f"{flag} is not a policy checkpoint", file=str(meta_path), hint=_POLICY_HINT)
    return step, meta, meta_path


def default_init(ws: Workspace, cfg: TrainDPOConfig) -> TrainDPOConfig:
    """`--init` defaults to the workspace's SFT run when there is exactly one; otherwise the candidates are listed."""
    from katcli.pipeline.runs import list_runs

    if cfg.init is not None or cfg.depth is not None:
        return cfg
    sft = list_runs(ws, "sft")
    if len(sft) == 1:
        return replace(cfg, init=f"sft/{sft[0]}")
    candidates = [f"sft/{n}" for n in sft] + [f"model/{n}" for n in list_runs(ws, "model")]
    if not candidates:
        raise ConfigError(
            "--init is needed: the workspace has no SFT run or imported model to start the policy from",
            hint="run `kat train sft` first (or `kat import nanochat`), or pass --init DIR",
        )
    raise ConfigError(
        f"--init is needed: the workspace has {len(candidates)} policies to start from ({', '.join(candidates)})",
        hint=f"pick one, e.g. --init {candidates[0]}",
    )


def check_models(ws: Workspace, cfg: TrainDPOConfig) -> None:
    """Refuse a reward model or a non-checkpoint as --init or --ref before anything is read or locked."""
    from katcli.model.hf import is_hf_ref
    from katcli.pipeline.runs import POLICY_STAGES, resolve_run

    for flag, value in (("--init", cfg.init), ("--ref", cfg.ref)):
        if value is not None and not is_hf_ref(value):  # an hf: model is checked when it is loaded
            _checkpoint_meta(resolve_run(ws, value, (*POLICY_STAGES, "rm"), flag=flag)[1], flag)


@dataclass
class _Reference:
    directory: Path | None  # None: the starting model itself (a fresh --depth model)
    step: int | None
    sha256: str
    is_init: bool

    def to_json(self, ws: Workspace) -> dict[str, Any]:
        from katcli.pipeline.runs import recorded_path

        path = recorded_path(ws, self.directory) if self.directory is not None else None
        return {"path": path, "step": self.step, "sha256": self.sha256, "is_init": self.is_init}


def _resolve_reference(prep: Prepared) -> _Reference:
    """The reference model (`--ref`, else the starting model), checked against the policy, its inputs recorded."""
    import hashlib

    from katcli.model.checkpoint import checkpoint_paths
    from katcli.pipeline.runs import POLICY_STAGES, resolve_run
    from katcli.workspace.hashing import sha256_file

    cfg: TrainDPOConfig = prep.cfg
    if cfg.ref is None:
        if prep.init_dir is None:  # --depth N: the reference is the fresh model itself
            digest = hashlib.sha256()
            for k, v in sorted(prep.gpt.state_dict().items()):
                digest.update(k.encode())
                digest.update(v.detach().cpu().contiguous().numpy().tobytes())
            return _Reference(None, None, digest.hexdigest(), True)
        step = int(prep.init_info["step"])
        return _Reference(prep.init_dir, step, sha256_file(checkpoint_paths(prep.init_dir, step)["model"]), True)
    ref_dir = resolve_run(prep.ws, cfg.ref, (*POLICY_STAGES, "rm"), flag="--ref")[1]
    step, meta, meta_path = _checkpoint_meta(ref_dir, "--ref")
    files = checkpoint_paths(ref_dir, step)
    tok_sha = prep.tokenizer.sha256()
    if meta.get("tokenizer_sha256") not in (None, tok_sha):
        raise KatError(
            f"--ref was trained with another tokenizer (sha256 {meta['tokenizer_sha256'][:12]}…) than the policy "
            f"({tok_sha[:12]}…)",
            file=str(meta_path),
            hint="DPO compares log-probs of the same tokens: pass a --ref that shares the policy's tokenizer",
        )
    ref_vocab = int(meta["model_config"].get("vocab_size", -1))
    if ref_vocab != prep.gpt.config.vocab_size:
        raise KatError(
            f"--ref has {ref_vocab} token ids but the policy has {prep.gpt.config.vocab_size}",
            file=str(meta_path),
            hint="DPO compares log-probs of the same tokens: pass a --ref with the policy's vocabulary",
        )
    for key in ("model", "meta"):
        record_input(prep.ws, prep.run, files[key])
    same = prep.init_dir is not None and prep.init_dir.resolve() == ref_dir.resolve()
    return _Reference(ref_dir, step, sha256_file(files["model"]), same and step == prep.init_info["step"])


# ---------------------------------------------------------------------------------------------------- build


def _reference_logps(prep: Prepared, enc: Any, ref: _Reference, out_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The reference log-probs of every encoded pair: this run's cache, another run's matching one, or computed."""
    import numpy as np

    from katcli.pipeline.runs import list_runs
    from katcli.train.batching import eval_batches
    from katcli.train.ref_cache import (
        RefCacheKey,
        cache_files,
        cached_or_computed,
        compute_ref_logps,
        load_ref_logps,
        save_ref_logps,
    )
    from katcli.train.run_dir import load_policy_model
    from katcli.train.seq_scoring import model_logprob_fn
    from katcli.workspace.hashing import sha256_file

    cfg: TrainDPOConfig = prep.cfg
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

    def compute() -> Any:
        # The starting model is still untrained here (resume loads its weights after the build), so with no --ref
        # it is the reference itself; a --ref model is loaded only for this pass and freed with this frame.
        model = prep.gpt if ref.is_init else load_policy_model(ref.directory, step=ref.step)
        model.to(dist.device)
        batches = eval_batches(
            enc, np.arange(len(enc)), batch_size=max(prep.micro_batch_size, 8), pad_id=prep.tokenizer.pad_token_id
        )
        was_training = model.training
        model.eval()
        try:
            return compute_ref_logps(
                len(enc), batches, model_logprob_fn(model, dist.device), dist=dist, progress=prep.progress
            )
        finally:
            model.train(was_training)

    logps, found = cached_or_computed(out_dir, key, len(enc), compute, write=dist.is_main)
    if found.logps is not None:
        info["state"] = "cached"
    else:
        info["state"] = "computed"
        if found.state == "stale":
            info["recomputed_because"] = found.reason
            prep.notes.append(f"recomputed the reference log-probs: {found.reason}")
    return logps, info


def _build(prep: Prepared) -> Built:
    import numpy as np

    from katcli.train.objectives.dpo import DPOObjective
    from katcli.train.ref_cache import cache_files
    from katcli.train.sequences import encode_pairs

    cfg: TrainDPOConfig = prep.cfg
    ref = _resolve_reference(prep)
    enc = encode_pairs(
        prep.tokenizer, [(p.messages, p.chosen, p.rejected) for p in prep.pairs], ids=[p.id for p in prep.pairs],
        max_len=cfg.max_len, max_response_len=cfg.resolved_max_response_len, progress=prep.progress,
    )
    if enc.prefix_trimmed or enc.responses_cut:
        prep.notes.append(
            f"{enc.prefix_trimmed:,} pairs had their prefix trimmed from the left "
            f"({enc.final_turn_cut:,} into the final user turn) and {enc.responses_cut:,} responses were cut "
            f"to fit --max-len {cfg.max_len}"
        )
    out_dir = prep.ws.abs(f"{P.DPO_DIR}/{cfg.run_name}")
    ref_logps, cache_info = _reference_logps(prep, enc, ref, out_dir)
    objective = DPOObjective(
        prep.gpt, enc, ref_logps, loss_cfg=cfg.loss_config(), pad_id=prep.tokenizer.pad_token_id,
        heldout=prep.heldout(), eval_batch_size=max(prep.micro_batch_size, 8), dist=prep.dist,
        progress=prep.progress,
    )
    train_index = np.asarray(prep.split.train, dtype=np.int64)
    array_file, key_file = cache_files(out_dir)
    cache_info["files"] = [prep.ws.rel(array_file), prep.ws.rel(key_file)]
    # The meta says which numbers the run used, never whether they were computed or reused this time: a resumed
    # run must write the same bytes as an uninterrupted one. How the cache was found goes to the manifest's stats.
    meta = {
        "objective": "dpo",
        "dpo": cfg.loss_config().to_dict(),
        "reference": ref.to_json(prep.ws),
        "ref_cache": {"key": cache_info["key"], "files": cache_info["files"]},
        "sequences": enc.stats,
    }
    stats = {"reference": meta["reference"], "ref_cache": cache_info["state"]}
    stats.update({k: cache_info[k] for k in ("reused_from", "recomputed_because") if k in cache_info})
    return Built(objective, enc.pair_lengths[train_index], meta=meta, stats=stats, outputs=[array_file, key_file])


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
    from katcli.train.batching import eval_batches
    from katcli.train.ref_cache import RefCacheKey, compute_ref_logps, load_ref_logps
    from katcli.train.run_dir import load_policy_model
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
    ref_step = meta["reference"].get("step")
    ref_file = checkpoint_paths(ref_dir, ref_step)["model"]
    if not ref_file.is_file() or sha256_file(ref_file) != key.reference_sha256:
        raise KatError(
            f"{name}: its cached reference log-probs cannot be used ({reason}) and its reference is no longer the "
            "model it was trained against",
            file=str(ref_file),
            hint=f"re-run `kat train dpo --name {directory.name}` against the current reference",
        )
    model = load_policy_model(ref_dir, step=ref_step)
    model.to(device).eval()
    notes.append(f"{name}: recomputed the held-out reference log-probs from {ref_path} ({reason})")
    batches = eval_batches(enc, np.arange(len(enc)), batch_size=batch_size, pad_id=pad_id)
    return compute_ref_logps(len(enc), batches, model_logprob_fn(model, device), progress=progress)


DPO_STAGE = TrainingStage(stage=STAGE, run_root=P.DPO_DIR, kind="kat-policy", build=_build, what="policies")


def run_train_dpo(
    ws: Workspace,
    cfg: TrainDPOConfig,
    *,
    progress: ProgressFn = no_progress,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train (or resume) one DPO policy and record it as `dpo/<name>`; works alone or under torchrun."""
    cfg = default_init(ws, cfg)
    check_models(ws, cfg)
    return run_training(ws, cfg, DPO_STAGE, progress=progress, on_step=on_step)
