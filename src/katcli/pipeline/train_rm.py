"""The `rm` stage: train a Bradley–Terry reward model, uniform or density-aware, into `rm_checkpoints/<name>/`.

Inputs (checked against the manifest): `data/pairs_all.jsonl`, `data/prefixes_all.jsonl`, the tokenizer
(`tokenizer/tokenizer.json`, or the one shipped with an `--init` model) and, with `--density-aware`, the density
weights and their ids. A uniform run also reads the density weights when they are present and fresh, but only to
report held-out accuracy per density quintile; they are then not recorded as an input, because the model does not
depend on them.

Held-out pairs are chosen by a seeded hash of their prefix id (`katcli.train.split`), so uniform and density-aware
runs of one seed are evaluated on the same prompts and no prompt is in both sets. Checkpoints are written atomically
during the run (only the latest step is kept); at the end the final files are recorded with `run.adopt`. A fresh
run first removes an earlier run's files of the same name; `--resume` continues the latest checkpoint exactly.
Under torchrun only rank 0 takes the workspace lock, writes and records; the other ranks read the same inputs.

This module wires files, flags, the manifest and ranks; the training itself is `katcli.train`. It knows nothing
about Typer or Rich.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from katcli.errors import ConfigError, InterruptedRun, KatError
from katcli.pipeline.stage import StageRun
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P

STAGE = "rm"
TOKENIZER = f"{P.TOKENIZER_DIR}/tokenizer.json"
DEFAULT_DEPTH = 4
LR_SCRATCH = 1e-3
LR_INIT = 2e-5
DEVICES = ("auto", "cpu", "cuda")
WEIGHTINGS = ("per-prompt", "per-pair")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Flags that may change between an interrupted run and its --resume without changing what is computed.
_RESUME_FREE = {"eval_every", "save_every", "device", "threads"}

StepCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TrainRMConfig:
    """Everything `kat train rm` takes; field names match the flags (`max_steps` ↔ `--max-steps`)."""

    name: str | None = None
    density_aware: bool = False
    pair_weighting: str | None = None
    init: str | None = None
    depth: int | None = None
    max_steps: int = 1000
    batch_size: int = 32
    micro_batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = 0.0
    warmup_steps: int | None = None
    grad_clip: float = 1.0
    reward_centering: float = 0.0
    max_len: int = 512
    max_response_len: int | None = None
    val_ratio: float = 0.05
    eval_every: int = 250
    save_every: int = 250
    bucketing: bool = True
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    force: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.name is not None and not _NAME_RE.match(self.name):
            raise ConfigError("--name must be letters, digits, '.', '_' or '-' (no slashes), starting alphanumeric")
        if self.init is not None and self.depth is not None:
            raise ConfigError("--init and --depth exclude each other: --init starts from a model, --depth from scratch")
        if self.depth is not None and self.depth < 1:
            raise ConfigError("--depth must be at least 1")
        if self.pair_weighting is not None:
            if self.pair_weighting not in WEIGHTINGS:
                raise ConfigError(f"--pair-weighting must be one of {', '.join(WEIGHTINGS)}")
            if not self.density_aware:
                raise ConfigError("--pair-weighting only applies with --density-aware")
        if self.max_steps < 1:
            raise ConfigError("--max-steps must be at least 1")
        if self.batch_size < 1:
            raise ConfigError("--batch-size must be at least 1")
        if self.micro_batch_size is not None and self.micro_batch_size < 1:
            raise ConfigError("--micro-batch-size must be at least 1")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError("--lr must be positive")
        if self.weight_decay < 0:
            raise ConfigError("--weight-decay must be 0 or more")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ConfigError("--warmup-steps must be 0 or more")
        if self.grad_clip < 0:
            raise ConfigError("--grad-clip must be 0 (off) or more")
        if self.reward_centering < 0:
            raise ConfigError("--reward-centering must be 0 (off) or more")
        if self.max_len < 16:
            raise ConfigError("--max-len must be at least 16")
        if self.max_response_len is not None and not 1 <= self.max_response_len <= self.max_len - 8:
            raise ConfigError(f"--max-response-len must be between 1 and --max-len − 8 ({self.max_len - 8})")
        if not 0.0 < self.val_ratio < 1.0:
            raise ConfigError("--val-ratio must be between 0 and 1 (exclusive)")
        if self.eval_every < 0:
            raise ConfigError("--eval-every must be 0 (only at the end) or more")
        if self.save_every < 0:
            raise ConfigError("--save-every must be 0 (only at the end) or more")
        if self.device not in DEVICES:
            raise ConfigError(f"--device must be one of {', '.join(DEVICES)}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("--threads must be at least 1")

    # ---------------------------------------------------------------------------------------------- resolved values

    @property
    def run_name(self) -> str:
        return self.name or ("density" if self.density_aware else "uniform")

    @property
    def weighting(self) -> str:
        if not self.density_aware:
            return "uniform"
        return self.pair_weighting or "per-prompt"

    @property
    def resolved_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return LR_INIT if self.init is not None else LR_SCRATCH

    @property
    def resolved_max_response_len(self) -> int:
        return self.max_response_len if self.max_response_len is not None else self.max_len // 2

    def params(self) -> dict[str, Any]:
        """The recorded parameters: every flag that shapes the model (not --force / --resume)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("force", "resume")}
        out["name"] = self.run_name
        out["pair_weighting"] = self.weighting
        out["lr"] = self.resolved_lr
        out["max_response_len"] = self.resolved_max_response_len
        if self.init is None:
            out["depth"] = self.depth if self.depth is not None else DEFAULT_DEPTH
        return out


def tiny_config(*, density_aware: bool = False, **overrides: Any) -> TrainRMConfig:
    """A configuration that trains in well under a minute on 2 CPU cores (quickstart, smoke tests)."""
    base: dict[str, Any] = dict(
        density_aware=density_aware, depth=1, max_steps=40, batch_size=16, max_len=256, lr=2e-3,
        val_ratio=0.2, eval_every=0, save_every=0, device="cpu", threads=1,
    )
    base.update(overrides)
    return TrainRMConfig(**base)


@dataclass
class TrainRMResult:
    name: str
    directory: Path
    step: int
    resumed_from: int | None
    eval: Any  # katcli.train.metrics.EvalReport (kept untyped so this module imports no torch at load time)
    train_pairs: int
    train_prompts: int
    heldout_pairs: int
    heldout_prompts: int
    heldout_fingerprint: str
    weighting: str
    ess: float
    ess_fraction: float
    n_params: int
    model_config: dict[str, int]
    device: str
    world_size: int
    tokens_per_s: float
    pad_fraction: float
    sequences: dict[str, int]
    notes: list[str] = field(default_factory=list)
    forced_over: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


class _ReadOnlyRun:
    """What ranks other than 0 use instead of a `StageRun`: same paths, no lock, no checks, no records."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.stats: dict[str, Any] = {}
        self.forced_over: list[str] = []
        self.judge = None

    def input(self, rel: str) -> Path:
        return self.ws.abs(rel)

    def external_input(self, path: Path | str, *, hash_file: bool = True) -> Path:
        return Path(path).expanduser().resolve()

    def adopt(self, rel: str) -> Path:
        return self.ws.abs(rel)

    def describe(self, rel: str, **kw: Any) -> None:
        return None


def run_train_rm(
    ws: Workspace,
    cfg: TrainRMConfig,
    *,
    progress: ProgressFn = no_progress,
    on_step: StepCallback | None = None,
) -> TrainRMResult:
    """Train (or resume) one reward model and record it as `rm/<name>`; works alone or under torchrun."""
    import torch

    from katcli.train.ddp import init_distributed

    cfg.validate()
    threads_before = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    dist = None
    try:
        dist = init_distributed(cfg.device)
        if not dist.is_main:
            progress = no_progress
            on_step = None
        with contextlib.ExitStack() as stack:
            error: BaseException | None = None
            try:
                if dist.is_main:
                    run: Any = stack.enter_context(
                        StageRun(ws, STAGE, name=cfg.run_name, params=cfg.params(), force=cfg.force)
                    )
                else:
                    run = _ReadOnlyRun(ws)
                job = _prepare(ws, cfg, run, dist, progress)
            except Exception as exc:  # every rank must hear about a failure before anyone enters a collective
                error = exc
            if not dist.agree(error is None):
                if error is not None:
                    raise error
                raise KatError("another training process failed during setup; see its error above")
            return _train(ws, cfg, run, dist, job, progress, on_step)
    finally:
        if dist is not None:
            dist.shutdown()
        torch.set_num_threads(threads_before)


# ---------------------------------------------------------------------------------------------------- setup


@dataclass
class _Job:
    """Everything `_prepare` resolved, ready for the loop."""

    rm: Any
    tokenizer: Any
    enc: Any
    split: Any
    sampler: Any
    eval_set: Any
    settings: Any
    out_dir: Path
    meta_base: dict[str, Any]
    resume_step: int | None
    resume_optim: dict[str, Any] | None
    notes: list[str]
    ess: float
    train_prompts: int
    heldout_prompts: int
    fingerprint: str


def _resolve_init(ws: Workspace, init: str) -> Path:
    candidate = Path(init).expanduser()
    if candidate.is_dir():
        return candidate.resolve()
    named = ws.abs(f"{P.MODELS_DIR}/{init}")
    if "/" not in init and named.is_dir():
        return named
    raise KatError(
        f"--init {init}: no such checkpoint directory",
        hint="pass a directory holding model_<step>.pt + meta_<step>.json, or the name of a model "
        "imported with `kat import nanochat` (models/<name>)",
    )


def _record_input(ws: Workspace, run: Any, path: Path) -> None:
    """A file inside the workspace is checked against the manifest; one outside is recorded as external."""
    try:
        rel = ws.rel(path)
    except KatError:
        run.external_input(path)
        return
    run.input(rel)


def _prepare(ws: Workspace, cfg: TrainRMConfig, run: Any, dist: Any, progress: ProgressFn) -> _Job:
    import numpy as np

    from katcli.model.checkpoint import checkpoint_paths, find_last_step, load_checkpoint
    from katcli.model.gpt import GPT, GPTConfig
    from katcli.model.tokenizer import Tokenizer
    from katcli.train import inputs as I
    from katcli.train.reward_model import RewardModel
    from katcli.train.rm_checkpoint import has_checkpoint, load_init_gpt, read_rm_meta
    from katcli.train.sampler import PairSampler, effective_sample_size, pair_probabilities
    from katcli.train.schedule import default_warmup
    from katcli.train.sequences import encode_pairs
    from katcli.train.split import split_pairs
    from katcli.train.trainer import EvalSet, TrainSettings

    notes: list[str] = []
    if cfg.batch_size % dist.world_size:
        raise ConfigError(
            f"--batch-size {cfg.batch_size} must be divisible by the number of processes ({dist.world_size})"
        )
    out_rel = f"{P.RM_DIR}/{cfg.run_name}"
    out_dir = ws.abs(out_rel)
    if cfg.resume:
        if not has_checkpoint(out_dir):
            raise KatError(f"nothing to resume: {out_rel}/ has no checkpoint", hint="drop --resume to start a new run")
        _check_same_flags(cfg, read_rm_meta(out_dir)[1], out_rel)  # before the slow part: fail fast

    # -- inputs ------------------------------------------------------------------------------------------
    pairs_path = run.input(P.PAIRS)
    prefixes_path = run.input(P.PREFIXES)
    init_dir = _resolve_init(ws, cfg.init) if cfg.init is not None else None
    tok_path: Path | None = None
    if init_dir is not None:
        for cand in (init_dir / "tokenizer.json", init_dir / P.TOKENIZER_DIR / "tokenizer.json"):
            if cand.is_file():
                tok_path = cand
                break
    if tok_path is None:
        tok_path = run.input(TOKENIZER)
    else:
        _record_input(ws, run, tok_path)
    weights = None
    weights_used_for = None
    if cfg.density_aware:
        weights_path, ids_path = run.input(P.DENSITY_WEIGHTS), run.input(P.EMBED_IDS)
        weights = I.read_density_weights(weights_path, ids_path)
        weights_used_for = "sampling"
    elif ws.abs(P.DENSITY_WEIGHTS).is_file() and ws.abs(P.EMBED_IDS).is_file():
        judge = getattr(run, "judge", None)
        fresh = judge is None or (
            judge.check_input(P.DENSITY_WEIGHTS) is None and judge.check_input(P.EMBED_IDS) is None
        )
        if fresh:
            weights = I.read_density_weights(ws.abs(P.DENSITY_WEIGHTS), ws.abs(P.EMBED_IDS))
            weights_used_for = "eval quintiles"
        else:
            notes.append("the density weights are stale or unrecorded: held-out accuracy has no density quintiles")
    else:
        notes.append("no density weights in the workspace (run `kat embed`): held-out accuracy has no density quintiles")

    pairs = I.read_pairs(pairs_path, progress=progress)
    I.check_consistency(pairs, I.read_prefix_counts(prefixes_path), prefixes_file=str(prefixes_path))
    prefix_ids = [p.prefix_id for p in pairs]
    split = split_pairs(prefix_ids, seed=cfg.seed, val_ratio=cfg.val_ratio)
    train_pids = [prefix_ids[i] for i in split.train]
    probs = pair_probabilities(train_pids, weights if cfg.density_aware else None, mode=cfg.weighting)
    ess = effective_sample_size(probs)

    # -- tokenizer and model ------------------------------------------------------------------------------
    tokenizer = Tokenizer.load(tok_path)
    init_info: dict[str, Any]
    if init_dir is not None:
        step = find_last_step(init_dir)
        files = checkpoint_paths(init_dir, step)
        for key in ("model", "meta"):
            _record_input(ws, run, files[key])
        gpt, ckpt = load_init_gpt(init_dir, step=step)
        recorded = ckpt.meta.get("tokenizer_sha256")
        if recorded is not None and recorded != tokenizer.sha256():
            raise KatError(
                f"--init model was trained with another tokenizer (sha256 {recorded[:12]}…, "
                f"this one is {tokenizer.sha256()[:12]}…)",
                file=str(tok_path),
                hint="put the model's tokenizer.json beside it, or train with the workspace's own tokenizer",
            )
        if gpt.config.vocab_size < tokenizer.vocab_size:
            raise KatError(
                f"--init model has {gpt.config.vocab_size} token ids but the tokenizer has {tokenizer.vocab_size}",
                file=str(files["meta"]),
            )
        if cfg.max_len > gpt.rotary_seq_len:
            raise ConfigError(f"--max-len {cfg.max_len} exceeds what the --init model supports ({gpt.rotary_seq_len})")
        init_info = {"path": str(init_dir), "step": step}
    else:
        depth = cfg.depth if cfg.depth is not None else DEFAULT_DEPTH
        config = GPTConfig.from_depth(depth, vocab_size=tokenizer.vocab_size, sequence_len=cfg.max_len)
        gpt = GPT(config, seed=cfg.seed)
        init_info = {"depth": depth, "seed": cfg.seed}
        notes.append(
            f"trained from scratch (--depth {depth}): fine for trying the pipeline, but real reward models start "
            "from a pretrained or SFT model (--init DIR, e.g. one from `kat import nanochat`)"
        )
    rm = RewardModel(gpt)

    # -- sequences, sampler, settings ---------------------------------------------------------------------
    enc = encode_pairs(
        tokenizer, [(p.messages, p.chosen, p.rejected) for p in pairs], ids=[p.id for p in pairs],
        max_len=cfg.max_len, max_response_len=cfg.resolved_max_response_len, progress=progress,
    )
    if enc.prefix_trimmed or enc.responses_cut:
        notes.append(
            f"{enc.prefix_trimmed:,} pairs had their prefix trimmed from the left "
            f"({enc.final_turn_cut:,} into the final user turn) and {enc.responses_cut:,} responses were cut "
            f"to fit --max-len {cfg.max_len}"
        )
    train_index = np.asarray(split.train, dtype=np.int64)
    sampler = PairSampler(
        probs, enc.pair_lengths[train_index], seed=cfg.seed, batch_size=cfg.batch_size, bucketing=cfg.bucketing
    )
    micro = cfg.micro_batch_size or cfg.batch_size // dist.world_size
    settings = TrainSettings(
        max_steps=cfg.max_steps, batch_size=cfg.batch_size, micro_batch_size=micro, lr=cfg.resolved_lr,
        warmup_steps=cfg.warmup_steps if cfg.warmup_steps is not None else default_warmup(cfg.max_steps),
        weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip, center_coef=cfg.reward_centering,
        eval_every=cfg.eval_every, save_every=cfg.save_every, eval_batch_size=max(micro, 8), seed=cfg.seed,
    )
    heldout = np.asarray(split.heldout, dtype=np.int64)
    eval_weights = weights if weights is not None and all(prefix_ids[i] in weights for i in heldout) else None
    if weights is not None and eval_weights is None:
        notes.append("the density weights do not cover every held-out prompt: no density quintiles")
    eval_set = EvalSet(heldout, [pairs[i].src for i in heldout], [prefix_ids[i] for i in heldout], eval_weights)
    fingerprint = split.fingerprint([p.id for p in pairs])
    train_prompts = len(set(train_pids))
    heldout_prompts = len({prefix_ids[i] for i in heldout})

    judge = getattr(run, "judge", None)
    input_shas = {}
    if judge is not None:
        for rel in (P.PAIRS, P.PREFIXES) + ((P.DENSITY_WEIGHTS, P.EMBED_IDS) if cfg.density_aware else ()):
            input_shas[rel] = judge.current_sha(rel)
    meta_base: dict[str, Any] = {
        "kind": "kat-reward-model",
        "format": 1,
        "model_config": gpt.config.to_dict(),
        "tokenizer_sha256": tokenizer.sha256(),
        "config": cfg.params(),
        "training": {"warmup_steps": settings.warmup_steps, "micro_batch_size": micro, "world_size": dist.world_size},
        "init": init_info,
        "inputs": input_shas,
        "heldout": {
            "seed": cfg.seed, "val_ratio": cfg.val_ratio, "pairs": len(heldout), "prompts": heldout_prompts,
            "fingerprint": fingerprint,
        },
        "sampling": {
            "weighting": cfg.weighting, "train_pairs": len(train_index), "train_prompts": train_prompts,
            "ess": round(ess, 3), "ess_fraction": round(ess / len(train_index), 6),
        },
        "sequences": enc.stats,
        "eval_weights": weights_used_for if eval_weights is not None else None,
    }

    # -- resume -------------------------------------------------------------------------------------------
    resume_step = resume_optim = None
    if cfg.resume:
        step, meta = read_rm_meta(out_dir)
        _check_same_inputs(meta, input_shas, tokenizer.sha256(), out_rel)
        ckpt = load_checkpoint(out_dir, step, device="cpu", load_optim=True)
        rm.load_checkpoint_state({k: v.float() for k, v in ckpt.model_state.items()})
        resume_step, resume_optim = step, ckpt.optim_state
        notes.append(f"resumed from step {step} of {out_rel}/")
    rm.to(dist.device)
    return _Job(
        rm=rm, tokenizer=tokenizer, enc=enc, split=split, sampler=sampler,
        eval_set=eval_set, settings=settings, out_dir=out_dir, meta_base=meta_base, resume_step=resume_step,
        resume_optim=resume_optim, notes=notes, ess=ess, train_prompts=train_prompts,
        heldout_prompts=heldout_prompts, fingerprint=fingerprint,
    )


def _interrupted_message(out_dir: Path, out_rel: str) -> str:
    """What survives a Ctrl-C: the latest checkpoint, which `--resume` continues exactly."""
    from katcli.model.checkpoint import find_last_step
    from katcli.train.rm_checkpoint import has_checkpoint

    if not has_checkpoint(out_dir):
        return f"interrupted before the first checkpoint; nothing was recorded and {out_rel}/ holds no checkpoint"
    step = find_last_step(out_dir)
    return (
        f"interrupted; nothing was recorded, but {out_rel}/ holds the checkpoint of step {step}: "
        "re-run the same command with --resume to continue exactly from there"
    )


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _check_same_flags(cfg: TrainRMConfig, meta: dict[str, Any], rel: str) -> None:
    """Refuse to resume a checkpoint trained with other flags: it would not continue the same run."""
    saved = meta.get("config", {})
    now = cfg.params()
    for key in sorted(set(saved) | set(now)):
        if key in _RESUME_FREE or saved.get(key) == now.get(key):
            continue
        if key == "density_aware":
            raise ConfigError(f"{rel}/ was trained {'with' if saved.get(key) else 'without'} --density-aware; resume with the same flags")
        raise ConfigError(
            f"{_flag(key)} is {now.get(key)!r} but {rel}/ was trained with {saved.get(key)!r}; "
            "resume with the same flags (or drop --resume to start over)"
        )


def _check_same_inputs(meta: dict[str, Any], shas: dict[str, str | None], tok_sha: str, rel: str) -> None:
    """Refuse to resume a checkpoint trained on other inputs: the sample stream would differ."""
    for path, sha in shas.items():
        if meta.get("inputs", {}).get(path) != sha:
            raise KatError(
                f"{path} changed since {rel}/ was checkpointed, so a resumed run would not continue the same run",
                hint="drop --resume to start over on the new inputs",
            )
    if meta.get("tokenizer_sha256") != tok_sha:
        raise KatError(f"the tokenizer changed since {rel}/ was checkpointed", hint="drop --resume to start over")


# ---------------------------------------------------------------------------------------------------- loop


def _train(
    ws: Workspace, cfg: TrainRMConfig, run: Any, dist: Any, job: _Job, progress: ProgressFn,
    on_step: StepCallback | None,
) -> TrainRMResult:
    from katcli.train.rm_checkpoint import METRICS_FILE, TOKENIZER_FILE, clear_run
    from katcli.train.trainer import Trainer

    if dist.is_main:
        if job.resume_step is None:
            clear_run(job.out_dir)
        job.out_dir.mkdir(parents=True, exist_ok=True)
        job.tokenizer.save(job.out_dir / TOKENIZER_FILE)
    dist.barrier()

    def meta_fn(step: int, report: Any) -> dict[str, Any]:
        meta = dict(job.meta_base)
        meta["step"] = step
        meta["eval"] = report.to_json() if report is not None else None
        return meta

    trainer = Trainer(
        job.rm, job.enc, job.split.train, job.sampler, job.settings, eval_set=job.eval_set, dist=dist,
        pad_id=job.tokenizer.bos_token_id, out_dir=job.out_dir, meta_fn=meta_fn, progress=progress,
        on_step=on_step,
    )
    if job.resume_step is not None:
        trainer.restore(job.resume_step, job.resume_optim or {})
    out_rel = f"{P.RM_DIR}/{cfg.run_name}"
    try:
        outcome = trainer.train()
    except KeyboardInterrupt:
        raise InterruptedRun(_interrupted_message(job.out_dir, out_rel)) from None
    files: list[Path] = []
    if dist.is_main:
        files = [*outcome.files, job.out_dir / METRICS_FILE, job.out_dir / TOKENIZER_FILE]
        for path in files:
            run.adopt(ws.rel(path))
        metrics_rel = f"{out_rel}/{METRICS_FILE}"
        run.describe(metrics_rel, rows=sum(1 for _ in open(ws.abs(metrics_rel), encoding="utf-8")))
        report = outcome.eval
        run.stats.update(
            {
                "step": outcome.step,
                "resumed_from": job.resume_step,
                "weighting": cfg.weighting,
                "train_pairs": len(job.split.train),
                "heldout_pairs": len(job.split.heldout),
                "heldout_fingerprint": job.fingerprint,
                "ess": round(job.ess, 3),
                "ess_fraction": round(job.ess / len(job.split.train), 6),
                "heldout_accuracy": report.to_json()["overall"] if report is not None else None,
                "pad_fraction": round(outcome.pad_fraction, 6),
                "tokens_per_s": round(outcome.tokens_per_s, 1),
                "world_size": dist.world_size,
                "device": str(dist.device),
            }
        )
    return TrainRMResult(
        name=cfg.run_name,
        directory=job.out_dir,
        step=outcome.step,
        resumed_from=job.resume_step,
        eval=outcome.eval,
        train_pairs=len(job.split.train),
        train_prompts=job.train_prompts,
        heldout_pairs=len(job.split.heldout),
        heldout_prompts=job.heldout_prompts,
        heldout_fingerprint=job.fingerprint,
        weighting=cfg.weighting,
        ess=job.ess,
        ess_fraction=job.ess / len(job.split.train),
        n_params=sum(p.numel() for p in job.rm.parameters()),
        model_config=job.rm.gpt.config.to_dict(),
        device=str(dist.device),
        world_size=dist.world_size,
        tokens_per_s=outcome.tokens_per_s,
        pad_fraction=outcome.pad_fraction,
        sequences=dict(job.enc.stats),
        notes=list(job.notes),
        forced_over=list(run.forced_over),
        files=files,
    )
