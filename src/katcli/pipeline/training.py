"""What every `kat train …` stage shares: flags, ranks, inputs, the model to start from, the split, resume, records.

A training stage (`train_rm`, `train_sft`, …) declares a `TrainingStage` (its stage key, run directory, checkpoint
kind and one `build` hook that turns the prepared common parts, `Prepared`, into an objective); its flags are a
`katcli.pipeline.train_config.TrainConfig`. Everything else is here, once, in phases (`_prepare`):

- **Ranks.** Under torchrun only rank 0 takes the workspace lock, checks upstream, writes and records (`StageRun`);
  the other ranks read the same inputs through `_ReadOnlyRun`. A setup error on any rank is heard by every rank
  before anyone enters a collective.
- **Inputs.** Pairs and prefixes (checked against each other), the tokenizer (the workspace's, or the one shipped
  beside an `--init` model), and the density weights: an input with `--density-aware`; otherwise read only when
  present and fresh, for per-quintile evaluation, and then not recorded as an input.
- **Starting model.** `--init` (a run name or a directory, `katcli.pipeline.runs.resolve_run`, loaded by
  `katcli.train.run_dir.load_run`; `hf:NAME|DIR` and runs made from one: `katcli.pipeline.hf_source`) or
  `--depth N` from scratch.
- **Held-out set.** `katcli.pipeline.heldout.build_heldout`, the one the evaluations rebuild: every objective with
  the same `--seed` and `--val-ratio` holds out the same prompts, and none the `--init` chain trained on.
- **Sampling.** One weighted sampler over the objective's training items (the training pairs, or the objective's
  own items such as GRPO's prompts, `Built.item_prefix_ids`); its effective sample size is recorded.
- **Resume.** Same flags (apart from `train_resume.RESUME_FREE`), same inputs and tokenizer, then the model,
  optimizer, sample stream and RNG continue exactly. A fresh run first removes an earlier run's files of the same
  name.
- **Records.** Every checkpoint's meta is the run's `RunMeta` (`_run_meta`) at that step; at the end the final
  files are adopted into the manifest with statistics read from the same record.

This module wires files, flags, the manifest and ranks; the training itself is `katcli.train`. It knows nothing
about Typer or Rich.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from katcli.errors import ConfigError, InterruptedRun, KatError
from katcli.pipeline.run_tracking import open_trackers, record_trackers
from katcli.pipeline.stage import StageRun, record_input
from katcli.pipeline.unrecorded import clean_failed_run, mark, unmark
from katcli.pipeline.train_config import DEFAULT_DEPTH, TrainConfig
from katcli.pipeline.train_resume import (
    check_same_flags,
    check_same_inputs,
    interrupted_message,
)
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P


StepCallback = Callable[[dict[str, Any]], None]


@dataclass
class Prepared:
    """The common parts a stage's `build` hook turns into an objective."""

    cfg: Any
    ws: Workspace
    run: Any
    dist: Any
    progress: ProgressFn
    pairs: list[Any]
    prefix_ids: list[str]
    split: Any
    tokenizer: Any
    model: Any  # the starting model: kat's GPT or an HF backbone (from --init, or fresh)
    init_info: dict[str, Any]
    init_dir: Path | None  # the --init checkpoint directory (None: a fresh --depth model)
    weights: dict[str, float] | None  # density weights when read (sampling or eval quintiles)
    eval_weights: dict[str, float] | None  # the weights when they cover every held-out prompt
    micro_batch_size: int
    notes: list[str]
    compute_dtype: Any = None  # torch dtype of --dtype on this device (katcli.devices.resolve_dtype)
    heldout_set: Any = None  # katcli.pipeline.heldout.HeldOutSet (the split and its fingerprint)
    lora: dict[str, Any] | None = None  # --lora-r: the run's adapters record (`katcli.pipeline.lora_start`)
    weights_used_for: str | None = None  # what the density weights serve ("sampling", "eval quintiles")
    quintile_weights: dict[str, float] | None = None  # the default set's, which quintiles are cut on (else `weights`)

    def encode_pairs(self) -> Any:
        """Every pair, chosen and rejected, with the run's tokenizer and lengths (a note says what was cut)."""
        from katcli.train.sequences import encode_pairs

        enc = encode_pairs(
            self.tokenizer, [(p.messages, p.chosen, p.rejected) for p in self.pairs], ids=[p.id for p in self.pairs],
            max_len=self.cfg.max_len, max_response_len=self.cfg.resolved_max_response_len, progress=self.progress,
        )
        self._note_cuts(enc, "pairs had their prefix trimmed", "responses were cut")
        return enc

    def encode_chosen(self) -> Any:
        """Every pair's prompt and chosen reply (what SFT imitates), encoded as `encode_pairs` encodes pairs."""
        from katcli.train.sequences import encode_sequences

        enc = encode_sequences(
            self.tokenizer, [(p.messages, (p.chosen,)) for p in self.pairs], ids=[p.id for p in self.pairs],
            max_len=self.cfg.max_len, max_response_len=self.cfg.resolved_max_response_len, progress=self.progress,
            task="tokenizing replies",
        )
        self._note_cuts(enc, "prompts were trimmed", "replies were cut")
        return enc

    def _note_cuts(self, enc: Any, trimmed: str, cut: str) -> None:
        if enc.prefix_trimmed or enc.responses_cut:
            self.notes.append(
                f"{enc.prefix_trimmed:,} {trimmed} from the left ({enc.final_turn_cut:,} into the final user turn) "
                f"and {enc.responses_cut:,} {cut} to fit --max-len {self.cfg.max_len}"
            )

    def heldout(self) -> Any:
        """The held-out rows (same indices as `split.heldout`) with their sources, prompts and weights."""
        from katcli.train.objective import HeldOut

        idx = self.split.heldout
        return HeldOut(idx, [self.pairs[i].src for i in idx], [self.prefix_ids[i] for i in idx], self.eval_weights)


@dataclass
class Built:
    """What a stage's `build` returns: the objective, its training items' lengths and its meta additions."""

    objective: Any
    item_lengths: Any  # numpy int64 [number of training items]: the length each training item is bucketed by
    meta: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    # The objective's own training items, given by their prompts' prefix ids (GRPO: one item per unique training
    # prompt); the sampler draws indices 0..n-1 into them by the same weighting. None: the items are the training
    # pairs (`split.train`), handed to `prepare` as pair indices.
    item_prefix_ids: list[str] | None = None
    item_noun: str = "pairs"
    outputs: list[Path] = field(default_factory=list)  # files the build wrote into the run directory (DPO's cache)


@dataclass(frozen=True)
class TrainingStage:
    """One `kat train …` objective, as the shared stage logic sees it."""

    stage: str  # registry stage key ("rm", "sft", …)
    run_root: str  # workspace directory of its runs (rm_checkpoints, sft_checkpoints, …)
    kind: str  # checkpoint kind
    build: Callable[[Prepared], Built]
    what: str = "model"  # for the from-scratch note ("reward models", "policies")


@dataclass
class TrainResult:
    name: str
    directory: Path
    step: int
    resumed_from: int | None
    eval: Any  # the objective's report (EvalReport, NLLReport, …); untyped so this module imports no torch
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
    train_items: int = 0  # what the sampler draws from: train_pairs, or the objective's own items
    item_noun: str = "pairs"
    run_stats: dict[str, Any] = field(default_factory=dict)  # objective-specific run statistics (timings, …)
    fsdp: bool = False
    state_bytes: int = 0  # parameters + gradients + optimizer state held by one process (rank 0)


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


def run_training(
    ws: Workspace,
    cfg: TrainConfig,
    stage: TrainingStage,
    *,
    progress: ProgressFn = no_progress,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train (or resume) one run of `stage` and record it as `<stage>/<name>`; works alone or under torchrun."""
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
        run_rel = f"{stage.run_root}/{cfg.run_name}"
        with contextlib.ExitStack() as stack:
            error: BaseException | None = None
            locked = False
            try:
                try:
                    if dist.is_main:
                        run: Any = stack.enter_context(
                            StageRun(ws, stage.stage, name=cfg.run_name, params=cfg.params(), force=cfg.force)
                        )
                        locked = True
                        mark(ws, run_rel, run.command)  # until recorded, what it writes is an unfinished run's
                    else:
                        run = _ReadOnlyRun(ws)
                    job = _prepare(ws, cfg, stage, run, dist, progress)
                except Exception as exc:  # every rank must hear about a failure before anyone enters a collective
                    error = exc
                if not dist.agree(error is None):
                    if error is not None:
                        raise error
                    raise KatError("another training process failed during setup; see its error above")
                result = _train(ws, cfg, stage, run, dist, job, progress, on_step)
            except BaseException:
                if locked:  # under the lock: what this run wrote goes, unless a checkpoint is left for --resume
                    clean_failed_run(ws, run_rel)
                raise
        if dist.is_main:
            unmark(ws, run_rel)  # recorded (the StageRun committed as the stack closed)
        return result
    finally:
        if dist is not None:
            dist.shutdown()
        torch.set_num_threads(threads_before)


# ---------------------------------------------------------------------------------------------------- setup


@dataclass
class _Job:
    """Everything `_prepare` resolved, ready for the loop."""

    prepared: Prepared
    built: Built
    sampler: Any
    settings: Any
    out_dir: Path
    out_rel: str
    meta: Any  # katcli.model.run_meta.RunMeta, without step and report
    resume_step: int | None
    resume_optim: dict[str, Any] | None
    train_index: Any  # what the sampler's indices map to: pair indices, or the objective's own item indices


def _density_weights(ws: Workspace, cfg: TrainConfig, run: Any, notes: list[str]) -> tuple[Any, Any, str | None]:
    """(sampling weights, quintile weights, what the default set serves).

    Sampling by a weight set makes it an input; the quintiles are always cut on the default set, read (when present
    and fresh) for them alone when the run samples by a named set (`--weights`) or not by density at all.
    """
    from katcli.pipeline.heldout import density_weights
    from katcli.pipeline.weight_sets import weight_set_files
    from katcli.train import inputs as I

    if cfg.density_aware:
        files = weight_set_files(ws, cfg.weights)
        sampling = I.read_density_weights(run.input(files.weights), run.input(files.ids))
        if files.weights == P.DENSITY_WEIGHTS:
            return sampling, sampling, "sampling"
    weights = density_weights(ws, getattr(run, "judge", None), notes, what="held-out results have no density quintiles")
    used_for = "eval quintiles" if weights is not None else None
    return (sampling if cfg.density_aware else weights), weights, used_for


def _starting_model(
    ws: Workspace, cfg: TrainConfig, stage: TrainingStage, run: Any, tokenizer: Any, tok_path: Path,
    init_dir: Path | None, notes: list[str],
) -> tuple[Any, dict[str, Any]]:
    from katcli.model.checkpoint import checkpoint_paths, find_last_step
    from katcli.model.gpt import GPT, GPTConfig
    from katcli.model.run_meta import RunMeta
    from katcli.pipeline.runs import recorded_path
    from katcli.train.run_dir import check_tokenizer, load_run

    unused = [f for f, on in (("--chat-template", cfg.chat_template), ("--trust-remote-code", cfg.trust_remote_code),
                              ("--gradient-checkpointing", cfg.gradient_checkpointing)) if on]
    if unused:
        notes.append(f"{', '.join(unused)} only apply to Hugging Face backbones (--init hf:…): ignored for kat's GPT")
    if cfg.lora_r:
        raise ConfigError(
            "--lora-r: LoRA adapters are for Hugging Face backbones (--init hf:NAME|DIR, or a run trained from one); "
            "kat's own GPT trains every weight",
            hint="drop --lora-r for kat's GPT, or start from a Hugging Face model (e.g. --init "
            "hf:Qwen/Qwen2.5-0.5B-Instruct --lora-r 16)",
        )
    if init_dir is None:
        depth = cfg.depth if cfg.depth is not None else DEFAULT_DEPTH
        config = GPTConfig.from_depth(depth, vocab_size=tokenizer.vocab_size, sequence_len=cfg.max_len)
        notes.append(
            f"trained from scratch (--depth {depth}): fine for trying the pipeline, but real {stage.what} start "
            "from a pretrained or SFT model (--init DIR, e.g. one from `kat import nanochat`)"
        )
        return GPT(config, seed=cfg.seed), {"depth": depth, "seed": cfg.seed}
    step = find_last_step(init_dir)
    files = checkpoint_paths(init_dir, step)
    for key in ("model", "meta"):
        record_input(ws, run, files[key])
    meta = RunMeta.read(files["meta"])
    recorded = meta.tokenizer_sha256
    check_tokenizer(
        tokenizer.sha256(), recorded, f"--init model was trained with another tokenizer (sha256 {(recorded or '')[:12]}…, "
        f"this one is {tokenizer.sha256()[:12]}…)", file=tok_path,
        hint="put the model's tokenizer.json beside it, or train with the workspace's own tokenizer", required=False,
    )
    gpt = load_run(init_dir, meta, step=step, tokenizer=tokenizer).model.train()  # a reward model: its body
    if gpt.config.vocab_size < tokenizer.vocab_size:
        raise KatError(
            f"--init model has {gpt.config.vocab_size} token ids but the tokenizer has {tokenizer.vocab_size}",
            file=str(files["meta"]),
            hint="use the tokenizer the model was trained with",
        )
    if cfg.max_len > gpt.rotary_seq_len:
        raise ConfigError(f"--max-len {cfg.max_len} exceeds what the --init model supports ({gpt.rotary_seq_len})")
    return gpt, {"path": recorded_path(ws, init_dir), "step": step}


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def _check_memory(flag: str, value: int, needed: int) -> None:
    """Refuse a size whose memory estimate exceeds what the machine has, naming the flag, before allocating it."""
    from katcli.devices import available_memory

    have = available_memory()
    if have is not None and needed > have:
        raise ConfigError(
            f"{flag} {value} needs about {_gib(needed)} of memory for its sample stream alone, more than the "
            f"{_gib(have)} available",
            hint=f"lower {flag} (use --micro-batch-size to split a batch into smaller forward passes)",
        )


def _check_unseen_heldout(
    ws: Workspace, cfg: TrainConfig, run: Any, init_dir: Path, heldout: set[str], notes: list[str]
) -> None:
    """Refuse (unless --force) held-out prompts that the --init model, or one it started from, trained on."""
    from katcli.pipeline.heldout import init_splits, seen_heldout

    splits = init_splits(init_dir, str(cfg.init), lambda rec: Path(rec) if Path(rec).is_absolute() else ws.abs(rec))
    for ancestor, n in seen_heldout(heldout, splits):
        what = (
            f"{n} of this run's {len(heldout)} held-out prompts are training prompts of {ancestor.label} (trained "
            f"with split seed {ancestor.seed} --val-ratio {ancestor.val_ratio}; this run holds out by --split-seed "
            f"{cfg.split_seed} --val-ratio {cfg.val_ratio})"
        )
        if not cfg.force:
            raise KatError(
                f"--init {cfg.init}: {what}",
                hint=f"train with --split-seed {ancestor.seed} --val-ratio {ancestor.val_ratio}, the split it was trained "
                "on, so held-out prompts stay unseen (or pass --force to evaluate on them anyway, recorded)",
            )
        run.forced_over.append(what)
        notes.append(f"held-out results are optimistic: {what}")
        return


def _prepare(
    ws: Workspace, cfg: TrainConfig, stage: TrainingStage, run: Any, dist: Any, progress: ProgressFn
) -> _Job:
    """Flags → inputs → held-out set → tokenizer and model → the objective → sampler and record → resume."""
    import numpy as np

    from katcli.model.gpt import set_compute_dtype

    notes: list[str] = []
    out_rel = f"{stage.run_root}/{cfg.run_name}"
    out_dir = ws.abs(out_rel)
    _check_flags(cfg, stage, dist, out_dir, out_rel)
    prepared = _prepare_common(ws, cfg, stage, run, dist, progress, notes)
    built = stage.build(prepared)
    set_compute_dtype(built.objective.module, prepared.compute_dtype)
    split = prepared.split
    if built.item_prefix_ids is None:
        item_pids = [prepared.prefix_ids[i] for i in split.train]
        train_index = np.asarray(split.train, dtype=np.int64)
    else:
        item_pids, train_index = built.item_prefix_ids, np.arange(len(built.item_prefix_ids), dtype=np.int64)
    sampler, sampling = _sampler(cfg, run, prepared, built, item_pids)
    settings = _loop_settings(cfg, prepared)
    meta = _run_meta(cfg, stage, dist, prepared, built, settings, sampling)
    job = _Job(
        prepared=prepared, built=built, sampler=sampler, settings=settings, out_dir=out_dir, out_rel=out_rel,
        meta=meta, resume_step=None, resume_optim=None, train_index=train_index,
    )
    if cfg.resume:
        _resume(cfg, stage, job, notes)
    if not cfg.fsdp:  # --fsdp: `fully_shard` moves one layer at a time and keeps its shard (never the whole model)
        built.objective.module.to(dist.device)
    return job


_RESUME_HINT = "pass a directory written by `kat train {stage}`"


def _check_flags(cfg: TrainConfig, stage: TrainingStage, dist: Any, out_dir: Path, out_rel: str) -> None:
    from katcli.train.run_dir import has_checkpoint, read_run

    if cfg.fsdp and not dist.distributed:
        raise ConfigError(
            "--fsdp shards the model over torchrun's processes, but this is a single process",
            hint=f"launch it as `torchrun --nproc_per_node=N -m katcli train {stage.stage} … --fsdp`, or drop --fsdp",
        )
    if cfg.batch_size % dist.world_size:
        raise ConfigError(
            f"{cfg.BATCH_FLAG} {cfg.batch_size} must be divisible by the number of processes ({dist.world_size})"
        )
    if cfg.resume:
        if not has_checkpoint(out_dir):
            raise KatError(f"nothing to resume: {out_rel}/ has no checkpoint", hint="drop --resume to start a new run")
        check_same_flags(cfg, read_run(out_dir, (stage.kind,), hint=_RESUME_HINT.format(stage=stage.stage))[1],
                         out_rel)


def _prepare_common(
    ws: Workspace, cfg: TrainConfig, stage: TrainingStage, run: Any, dist: Any, progress: ProgressFn,
    notes: list[str],
) -> Prepared:
    """The inputs, the held-out set, the tokenizer and the starting model: what every objective's build gets."""
    from katcli.devices import resolve_dtype
    from katcli.model.gpt import set_compute_dtype
    from katcli.model.hf import is_hf_dir, is_hf_ref
    from katcli.model.tokenizer import Tokenizer
    from katcli.pipeline.heldout import build_heldout, covering
    from katcli.pipeline.hf_source import hf_start
    from katcli.pipeline.runs import POLICY_STAGES, resolve_run
    from katcli.train import inputs as I
    from katcli.train.run_dir import run_tokenizer_path

    pairs_path = run.input(P.PAIRS)
    prefixes_path = run.input(P.PREFIXES)
    init_dir = None
    if cfg.init is not None and not is_hf_ref(cfg.init):
        init_dir = resolve_run(ws, cfg.init, (*POLICY_STAGES, "rm"), flag="--init")[1]
    hf_init = cfg.init is not None and (is_hf_ref(cfg.init) or is_hf_dir(init_dir))
    tok_path = None
    if not hf_init:  # an HF backbone's tokenizer ships with the model (`hf_start`)
        tok_path = run_tokenizer_path(init_dir) if init_dir is not None else None
        if tok_path is None:
            tok_path = run.input(P.TOKENIZER)
        else:
            record_input(ws, run, tok_path)
    weights, quintile_weights, weights_used_for = _density_weights(ws, cfg, run, notes)

    pairs = I.read_pairs(pairs_path, progress=progress)
    I.check_consistency(pairs, I.read_prefix_counts(prefixes_path), prefixes_file=str(prefixes_path))
    held = build_heldout(pairs, cfg.split_seed, cfg.val_ratio)
    prefix_ids = held.prefix_ids
    if init_dir is not None:
        _check_unseen_heldout(ws, cfg, run, init_dir, {prefix_ids[i] for i in held.split.heldout}, notes)
    if hf_init:
        tokenizer, model, init_info = hf_start(ws, cfg, stage.kind, run, init_dir)
        lora = init_info.pop("lora", None)
        if lora is not None:
            total = sum(p.numel() for p in model.parameters())
            notes.append(f"LoRA r={lora['r']} (alpha {lora['alpha']}) on {', '.join(lora['targets'])}: "
                         f"{lora['trainable_params']:,} trainable parameters of {total:,} "
                         f"({100 * lora['trainable_params'] / total:.2f}%)")
    else:
        tokenizer = Tokenizer.load(tok_path)
        model, init_info = _starting_model(ws, cfg, stage, run, tokenizer, tok_path, init_dir, notes)
        lora = None
    compute_dtype = resolve_dtype(cfg.dtype, dist.device)
    set_compute_dtype(model, compute_dtype)
    eval_weights = covering(quintile_weights, [prefix_ids[i] for i in held.split.heldout], notes)
    return Prepared(
        cfg=cfg, ws=ws, run=run, dist=dist, progress=progress, pairs=pairs, prefix_ids=prefix_ids, split=held.split,
        tokenizer=tokenizer, model=model, init_info=init_info, init_dir=init_dir, weights=weights,
        eval_weights=eval_weights, micro_batch_size=cfg.micro_batch_size or cfg.batch_size // dist.world_size,
        notes=notes, heldout_set=held, weights_used_for=weights_used_for if eval_weights is not None else None,
        quintile_weights=quintile_weights, compute_dtype=compute_dtype,
        lora=lora,
    )


def _sampler(cfg: TrainConfig, run: Any, prep: Prepared, built: Built, item_pids: list[str]) -> tuple[Any, Any]:
    """The weighted sampler over the training items, and the record of how it samples."""
    import numpy as np

    from katcli.model.run_meta import Sampling
    from katcli.train.sampler import WeightedSampler, effective_sample_size, item_probabilities, pool_bytes

    probs = item_probabilities(
        item_pids, prep.weights if cfg.density_aware else None, mode=cfg.weighting, noun=built.item_noun
    )
    ess = effective_sample_size(probs)
    _check_memory(cfg.BATCH_FLAG, cfg.batch_size, pool_bytes(cfg.batch_size))
    sampler = WeightedSampler(
        probs, np.asarray(built.item_lengths), seed=cfg.seed, batch_size=cfg.batch_size, bucketing=cfg.bucketing
    )
    judge = getattr(run, "judge", None)
    n_items = len(item_pids)
    sampling = Sampling(
        weighting=cfg.weighting, density_aware=cfg.density_aware, train_pairs=len(prep.split.train),
        train_prompts=len({prep.prefix_ids[i] for i in prep.split.train}), ess=round(ess, 3),
        ess_fraction=round(ess / n_items, 6), items=built.item_noun, train_items=n_items,
        weights_sha256=judge.current_sha(_sampled_weights(cfg)) if cfg.density_aware and judge is not None else None,
        weights=cfg.weights,
    )
    return sampler, sampling


def _sampled_weights(cfg: TrainConfig) -> str:
    """The weights file a density-aware run samples by: the default set's, or `--weights NAME`'s."""
    return P.weight_set_weights(cfg.weights or P.DEFAULT_WEIGHT_SET)


def _loop_settings(cfg: TrainConfig, prep: Prepared) -> Any:
    import torch

    from katcli.train.loop import LoopSettings
    from katcli.train.schedule import default_warmup

    return LoopSettings(
        max_steps=cfg.max_steps, micro_batch_size=prep.micro_batch_size, lr=cfg.resolved_lr,
        warmup_steps=cfg.warmup_steps if cfg.warmup_steps is not None else default_warmup(cfg.max_steps),
        weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip, eval_every=cfg.eval_every,
        save_every=cfg.save_every, seed=cfg.seed, fsdp=cfg.fsdp, grad_scaler=prep.compute_dtype == torch.float16,
    )


def _run_meta(cfg: TrainConfig, stage: TrainingStage, dist: Any, prep: Prepared, built: Built, settings: Any,
              sampling: Any) -> Any:
    """What every checkpoint of the run records (`RunMeta`); the step and its report are added at each save."""
    import torch

    from katcli.devices import dtype_name
    from katcli.model.run_meta import RunMeta, Split

    held = prep.heldout_set
    judge = getattr(prep.run, "judge", None)
    inputs = {}
    if judge is not None:
        for rel in (P.PAIRS, P.PREFIXES) + ((_sampled_weights(cfg), P.EMBED_IDS) if cfg.density_aware else ()):
            inputs[rel] = judge.current_sha(rel)
    heldout = held.split.heldout
    extra = dict(built.meta)
    if prep.lora is not None:
        extra["lora"] = prep.lora
    objective_key = extra.pop("objective", None)
    return RunMeta(
        kind=stage.kind, objective=objective_key or stage.stage, model_config=prep.model.config.to_dict(),
        tokenizer_sha256=prep.tokenizer.sha256(), config=cfg.params(),
        training={"warmup_steps": settings.warmup_steps, "micro_batch_size": settings.micro_batch_size,
                  "world_size": dist.world_size, **({"fsdp": True} if cfg.fsdp else {}),
                  # The precision it computed in, unless the CPU's fp32 (so CPU records stay as they always were).
                  **({"dtype": dtype_name(prep.compute_dtype)}
                     if prep.compute_dtype != torch.float32 or dist.device.type != "cpu" else {})},
        init=prep.init_info, inputs=inputs,
        split=Split(cfg.split_seed, cfg.val_ratio, len(heldout), len({prep.prefix_ids[i] for i in heldout}),
                    held.fingerprint),
        sampling=sampling, eval_weights=prep.weights_used_for,
        reward_model=extra.pop("reward_model", None), reference=extra.pop("reference", None), extra=extra,
    )


def _resume(cfg: TrainConfig, stage: TrainingStage, job: _Job, notes: list[str]) -> None:
    """Same flags, inputs and tokenizer as the checkpoint; then its model and optimizer state."""
    from katcli.model.checkpoint import load_checkpoint
    from katcli.train.run_dir import read_run

    step, meta = read_run(job.out_dir, (stage.kind,), hint=_RESUME_HINT.format(stage=stage.stage))
    check_same_inputs(meta, job.meta.inputs, job.meta.tokenizer_sha256, job.out_rel)
    ckpt = load_checkpoint(job.out_dir, step, device="cpu", load_optim=True)
    job.built.objective.load_checkpoint_state({k: v.float() for k, v in ckpt.model_state.items()})
    job.resume_step, job.resume_optim = step, ckpt.optim_state
    notes.append(f"resumed from step {step} of {job.out_rel}/")


# ---------------------------------------------------------------------------------------------------- loop


def _train(
    ws: Workspace, cfg: TrainConfig, stage: TrainingStage, run: Any, dist: Any, job: _Job, progress: ProgressFn,
    on_step: StepCallback | None,
) -> TrainResult:
    from katcli.train.loop import TrainingLoop
    from katcli.train.metrics_log import METRICS_FILE
    from katcli.train.run_dir import TOKENIZER_FILE, clear_run

    prep, obj = job.prepared, job.built.objective
    if dist.is_main:
        if job.resume_step is None:
            clear_run(job.out_dir)
        job.out_dir.mkdir(parents=True, exist_ok=True)
    saved = prep.tokenizer.save(job.out_dir / TOKENIZER_FILE) if dist.is_main else None
    base_adapters: list[Path] = []
    if prep.lora is not None and dist.is_main:  # a chained LoRA run: the adapters merged into its base, beside it
        from katcli.pipeline.lora_start import copy_base_adapters

        base_adapters = copy_base_adapters(prep.model, job.out_dir)
    tok_files = saved if isinstance(saved, list) else [job.out_dir / TOKENIZER_FILE]  # an HF tokenizer: several
    dist.barrier()

    def meta_fn(step: int, report: Any) -> dict[str, Any]:
        return job.meta.at_step(step, report).to_json()

    trackers = None
    if dist.is_main:
        trackers = open_trackers(ws, job.meta, cfg.report_to, run.key, run.command, job.resume_step, prep.notes)
    loop = TrainingLoop(
        obj, job.train_index, job.sampler, job.settings, dist=dist, out_dir=job.out_dir, meta_fn=meta_fn,
        progress=progress, on_step=on_step, trackers=trackers,
    )
    if job.resume_step is not None:
        loop.restore(job.resume_step, job.resume_optim or {})
    try:
        outcome = loop.train()
    except KeyboardInterrupt:
        raise InterruptedRun(interrupted_message(job.out_dir, loop.at_step, run.command if dist.is_main else None)) from None
    extra = getattr(obj, "run_stats", None)
    run_stats = extra(update_seconds=outcome.train_seconds - outcome.prepare_seconds) if extra is not None else {}
    files: list[Path] = []
    if dist.is_main:
        files = [*outcome.files, job.out_dir / METRICS_FILE, *tok_files, *base_adapters, *job.built.outputs]
        _record(ws, cfg, run, job, outcome, files, run_stats, str(dist.device), dist.world_size)
        record_trackers(ws, run, trackers, prep.notes)
    return _result(cfg, job, outcome, run, files, run_stats, str(dist.device), dist.world_size)


def _record(ws: Workspace, cfg: TrainConfig, run: Any, job: _Job, outcome: Any, files: list[Path],
            run_stats: dict[str, Any], device: str, world_size: int) -> None:
    """Adopt the run's files into the manifest with its statistics (what `kat status` and the report show)."""
    from katcli.train.metrics_log import METRICS_FILE

    for path in files:
        run.adopt(ws.rel(path))
    metrics_rel = f"{job.out_rel}/{METRICS_FILE}"
    run.describe(metrics_rel, rows=sum(1 for _ in open(ws.abs(metrics_rel), encoding="utf-8")))
    meta, report = job.meta, outcome.eval
    run.stats.update(
        {
            "step": outcome.step,
            "resumed_from": job.resume_step,
            "weighting": meta.sampling.weighting,
            "train_pairs": meta.sampling.train_pairs,
            "heldout_pairs": meta.split.pairs,
            "heldout_fingerprint": meta.split.fingerprint,
            "ess": meta.sampling.ess,
            "ess_fraction": meta.sampling.ess_fraction,
            **job.built.stats,
            **run_stats,
            "heldout_" + _headline_key(report): report.to_json()["overall"] if report is not None else None,
            "pad_fraction": round(outcome.pad_fraction, 6),
            "tokens_per_s": round(outcome.tokens_per_s, 1),
            "state_mib_per_process": round(outcome.state_bytes / 2**20, 3),
            "world_size": world_size,
            "device": device,
            **({"fsdp": True} if cfg.fsdp else {}),
        }
    )
    if "hf" in (meta.init or {}):  # the base model a Hugging Face backbone started from (kat status shows it)
        run.stats["base_model"] = _base_model(meta.init["hf"])
        lora = meta.lora
        if lora is not None:  # kat status: "… · lora r=16"
            run.stats["base_model"] += f" · lora r={lora['r']}"
            run.stats["lora"] = {"r": lora["r"], "alpha": lora["alpha"], "trainable_params": lora["trainable_params"]}


def _result(cfg: TrainConfig, job: _Job, outcome: Any, run: Any, files: list[Path], run_stats: dict[str, Any],
            device: str, world_size: int) -> TrainResult:
    meta, prep, obj = job.meta, job.prepared, job.built.objective
    return TrainResult(
        name=cfg.run_name, directory=job.out_dir, step=outcome.step, resumed_from=job.resume_step,
        eval=outcome.eval, train_pairs=meta.sampling.train_pairs, train_prompts=meta.sampling.train_prompts,
        heldout_pairs=meta.split.pairs, heldout_prompts=meta.split.prompts, heldout_fingerprint=meta.split.fingerprint,
        weighting=meta.sampling.weighting, ess=meta.sampling.ess, ess_fraction=meta.sampling.ess_fraction,
        n_params=sum(p.numel() for p in obj.module.parameters()), model_config=meta.model_config, device=device,
        world_size=world_size, tokens_per_s=outcome.tokens_per_s, pad_fraction=outcome.pad_fraction,
        sequences=dict(job.built.meta.get("sequences", {})), notes=list(prep.notes),
        forced_over=list(run.forced_over), files=files, train_items=meta.sampling.train_items,
        item_noun=meta.sampling.items, run_stats=run_stats, fsdp=cfg.fsdp, state_bytes=outcome.state_bytes,
    )


def _base_model(src: dict[str, Any]) -> str:
    """`NAME@revision`, or the directory with a short checksum of its weights."""
    if src.get("revision"):
        return f"{src['location']}@{src['revision']}"
    weights = src.get("files_sha256", {}).get("model.safetensors")
    return src["location"] + (f" (model.safetensors sha256 {weights[:12]})" if weights else "")


def _headline_key(report: Any) -> str:
    """The manifest stat holding a run's overall held-out result: accuracy for reward models, nll for policies."""
    return getattr(report, "headline", "accuracy")
