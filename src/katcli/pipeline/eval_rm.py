"""`kat eval rm`: score reward models and DPO policies on the same held-out pairs, side by side.

A checkpoint is a run name under `rm_checkpoints/` or `dpo_checkpoints/` (e.g. `uniform`, `dpo/density`), a
checkpoint directory, or `hf:NAME|DIR`: an off-the-shelf Hugging Face reward model (a sequence classifier with one
label) scored as it is, with its own tokenizer and length limit (`katcli.pipeline.hf_source.hf_reward_model`); it
records no split, so the held-out set is the kat models' (kat's default split when there are none). A DPO policy
is scored as the implicit reward model `β log π/π_ref` (its reference log-probs from the run's cache, or
recomputed read-only from its recorded reference when the cache no longer holds). The held-out set is recomputed
from the current pairs with the split seed and ratio recorded in each checkpoint's meta, and all models
must agree on it; a model trained on another version of the pairs is refused (its "held-out" pairs might have been
training pairs), unless `--force`. Density quintiles come from the workspace's density weights when they are present
and fresh. Each model is scored with its own tokenizer (the `tokenizer.json` saved beside it) and its own
`--max-len`. Every model after the first is compared with the first on the same pairs (`comparisons`: Δ accuracy
with a paired bootstrap interval over held-out prompts and McNemar's exact p-value, see `katcli.evaluation.paired`).

Evaluation writes nothing and takes no lock: it is a read-only view of the workspace. This module wires files and
checks; scoring is `katcli.train.evaluate` and `katcli.train.objectives.dpo`. It knows nothing about Typer or Rich.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from katcli.errors import ConfigError, KatError
from katcli.pipeline.upstream import load_judge
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P

SCHEMA = "kat.eval.rm/1"
CKPT = "CKPT"  # how errors name a model argument of `kat eval rm`

# Policy objectives that define an implicit reward model kat evaluates on pairs (DPO's --loss values, KTO).
IMPLICIT_REWARD_OBJECTIVES = ("dpo", "kto")


@dataclass
class ModelEval:
    name: str
    directory: Path
    step: int
    weighting: str
    report: Any  # katcli.train.metrics.EvalReport
    hf: dict[str, Any] | None = None  # a Hugging Face reward model as it is: its source (katcli.model.hf.HFSource)

    def to_json(self) -> dict[str, Any]:
        out = {
            "name": self.name, "path": str(self.directory), "step": self.step, "weighting": self.weighting,
            **self.report.to_json(),
        }
        return out if self.hf is None else {**out, "hf": self.hf}


@dataclass
class EvalRMResult:
    heldout: dict[str, Any]
    models: list[ModelEval]
    quintile_ranges: list[list[float]] | None
    notes: list[str] = field(default_factory=list)
    comparisons: list[dict[str, Any]] = field(default_factory=list)  # every model against the first, paired

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "heldout": self.heldout,
            "quintile_weight_ranges": self.quintile_ranges,
            "models": [m.to_json() for m in self.models],
            "comparisons": self.comparisons,
            "notes": self.notes,
        }


def resolve_checkpoint(ws: Workspace, arg: str) -> tuple[str, Path]:
    """(display name, directory) of a run under rm_checkpoints/ or dpo_checkpoints/, or a path (`runs`' rule).

    A bare name is the reward model's when rm_checkpoints/ has one of that name; `dpo/NAME` names the DPO run, and
    a bare name only a DPO run has is shown as `dpo/NAME` (never as if it were a reward model).
    """
    from katcli.pipeline.runs import RUN_ROOTS, lookup_run, other_stage_run, resolve_run

    # `kat eval rm uniform density` keeps meaning the reward models when DPO runs share those names.
    bare_rm = "/" not in arg and ws.abs(f"{P.RM_DIR}/{arg}").is_dir()
    stages = ("rm",) if bare_rm else ("rm", "dpo", "kto")
    try:
        name, directory = resolve_run(ws, arg, stages, flag="CHECKPOINT")
        found = lookup_run(ws, arg, stages)
        stage = getattr(found, "stage", None)
        if "/" not in arg and stage in IMPLICIT_REWARD_OBJECTIVES:
            name = f"{stage}/{name}"
        return name, directory
    except KatError as exc:
        if "several runs" in exc.message:
            raise
        other = other_stage_run(ws, arg, stages)
        raise KatError(
            f"{arg!r} is a run of {RUN_ROOTS[other.stage]}/, not a reward model or DPO policy" if other is not None
            else f"no reward model or DPO policy {arg!r}",
            hint=f"pass a run name from {P.RM_DIR}/ or {P.DPO_DIR}/ (e.g. uniform, dpo/density) or a checkpoint "
            "directory",
        ) from None


def _read_scorer_meta(directory: Path) -> tuple[int, dict[str, Any]]:
    """A reward model's or a DPO policy's checkpoint meta; any other policy is refused (it scores no pairs)."""
    from katcli.model.checkpoint import checkpoint_paths
    from katcli.train.run_dir import POLICY_KIND, RM_KIND, read_run_meta

    hint = "pass a run of `kat train rm` or `kat train dpo` (a DPO policy is an implicit reward model)"
    step, meta = read_run_meta(directory, (RM_KIND, POLICY_KIND), hint=hint)
    if meta["kind"] == POLICY_KIND and meta.get("objective") not in IMPLICIT_REWARD_OBJECTIVES:
        raise KatError(
            f"a {meta.get('objective', 'policy')} policy has no reward to compare pairs with",
            file=str(checkpoint_paths(directory, step)["meta"]), hint=hint,
        )
    return step, meta


def hf_scorer(arg: str, *, trust_remote_code: bool, flag: str) -> tuple[str, Path, int, dict[str, Any]]:
    """(name, directory, step, meta) of `hf:NAME|DIR`, an off-the-shelf reward model scored as it is (step 0)."""
    from katcli.pipeline.hf_source import hf_reward_model

    directory, meta = hf_reward_model(
        arg, trust_remote_code=trust_remote_code, flag=flag, label=arg if flag == CKPT else None,
        no_head_hint=f"a causal LM is a reward model only against a reference (β·log π/π_ref): train it with "
        f"`kat train dpo --init {arg}` and evaluate that run (dpo/NAME), or pass an "
        "AutoModelForSequenceClassification with num_labels=1",
    )
    return arg, directory, 0, meta


def load_scorer(ws: Workspace, name: str, directory: Path, step: int, meta: dict[str, Any], *, device: Any
                ) -> tuple[Any, Any]:
    """(reward model, its tokenizer) of a `kat train rm` run or of an HF reward model as it is (`hf_scorer`)."""
    from katcli.model.hf import AS_IS_KIND
    from katcli.pipeline.hf_source import load_hf_reward_model
    from katcli.train.rm_checkpoint import load_rm

    if meta.get("kind") == AS_IS_KIND:
        return load_hf_reward_model(directory, meta, device=device)
    tokenizer = rm_tokenizer(ws, name, directory, meta)
    return load_rm(directory, step, device=device)[0], tokenizer


def _train_command(meta: dict[str, Any]) -> str:
    objective = meta.get("objective")
    return f"kat train {objective}" if objective in IMPLICIT_REWARD_OBJECTIVES else "kat train rm"


def _score_dpo(
    ws: Workspace, name: str, directory: Path, step: int, meta: dict[str, Any], enc: Any, heldout_index: Any,
    held: list[Any], weights: Any, pairs_sha: str | None, *, batch_size: int, pad_id: int, device: Any,
    progress: ProgressFn, notes: list[str],
) -> Any:
    """A DPO or KTO policy as an implicit reward model on the held-out pairs (the same report as a reward model's):
    β(π − ref), or, for the reference-free SimPO and ORPO, β × the reply's mean token log-prob."""
    import numpy as np

    from katcli.pipeline.dpo_reference import heldout_reference_logps
    from katcli.train.dpo_losses import DPOLossConfig
    from katcli.train.objective import HeldOut
    from katcli.train.objectives.dpo import implicit_reward_eval
    from katcli.train.run_dir import load_policy_model

    cfg = DPOLossConfig(**meta["dpo"]) if "dpo" in meta else DPOLossConfig(beta=meta["kto"]["beta"])
    ref = None if cfg.reference_free else heldout_reference_logps(  # SimPO, ORPO: β × mean token log-prob
        ws, name, directory, meta, pairs_sha256=pairs_sha, heldout_index=heldout_index, enc=enc,
        batch_size=batch_size, pad_id=pad_id, device=device, progress=progress, notes=notes,
    )
    gpt = load_policy_model(directory, step=step)
    gpt.to(device)
    index = np.arange(len(held))
    rows = HeldOut(index, [p.src for p in held], [p.prefix_id for p in held], weights)
    return implicit_reward_eval(
        gpt, enc, ref, cfg, rows, batch_size=batch_size, pad_id=pad_id, device=device,
        progress=progress,
    )


def rm_tokenizer(ws: Workspace, name: str, directory: Path, meta: dict[str, Any]) -> Any:
    """The tokenizer a reward model was trained with: the copy beside it (else the workspace's), sha256-checked."""
    from katcli.model.hf import is_hf_dir
    from katcli.model.tokenizer import Tokenizer
    from katcli.train.run_dir import TOKENIZER_FILE, load_run_tokenizer

    tok_file = directory / TOKENIZER_FILE
    if is_hf_dir(directory):  # a Hugging Face backbone: its own tokenizer files, through kat's adapter
        tokenizer = load_run_tokenizer(directory)
    else:
        tokenizer = Tokenizer.load(tok_file if tok_file.is_file() else ws.abs(f"{P.TOKENIZER_DIR}/tokenizer.json"))
    if tokenizer.sha256() != meta.get("tokenizer_sha256"):
        raise KatError(
            f"{name}: the tokenizer beside it is not the one it was trained with",
            file=str(tok_file),
            hint=f"re-run `{_train_command(meta)}` for it",
        )
    return tokenizer


def fresh_density_weights(ws: Workspace, judge: Any, prefix_ids: Sequence[str], notes: list[str]) -> dict | None:
    """The workspace's density weights when present, fresh and covering every prompt in `prefix_ids`; else None
    and a note saying why there are no density quintiles."""
    from katcli.train import inputs as I

    if not (ws.abs(P.DENSITY_WEIGHTS).is_file() and ws.abs(P.EMBED_IDS).is_file()):
        notes.append("no density weights in the workspace (run `kat embed`): no density quintiles")
        return None
    if judge.check_input(P.DENSITY_WEIGHTS) is not None or judge.check_input(P.EMBED_IDS) is not None:
        notes.append("the density weights are stale or unrecorded: no density quintiles")
        return None
    weights = I.read_density_weights(ws.abs(P.DENSITY_WEIGHTS), ws.abs(P.EMBED_IDS))
    if not all(pid in weights for pid in prefix_ids):
        notes.append("the density weights do not cover every held-out prompt: no density quintiles")
        return None
    return weights


def workspace_rel(ws: Workspace, path: Path) -> str | None:
    try:
        return ws.rel(path)
    except KatError:
        return None


def run_eval_rm(
    ws: Workspace,
    checkpoints: Sequence[str],
    *,
    device: str = "auto",
    batch_size: int = 32,
    threads: int | None = None,
    force: bool = False,
    trust_remote_code: bool = False,
    progress: ProgressFn = no_progress,
) -> EvalRMResult:
    """Evaluate every checkpoint on the common held-out set."""
    import numpy as np
    import torch

    from katcli.devices import resolve_device
    from katcli.evaluation.paired import compare
    from katcli.model.checkpoint import checkpoint_paths
    from katcli.model.hf import AS_IS_KIND, is_hf_ref
    from katcli.pipeline.train_config import TrainConfig
    from katcli.train import inputs as I
    from katcli.train.evaluate import evaluate
    from katcli.train.metrics import density_quintiles
    from katcli.train.rm_checkpoint import rm_lengths
    from katcli.train.sequences import encode_pairs
    from katcli.train.split import split_pairs

    if not checkpoints:
        raise ConfigError("name at least one reward model (e.g. `kat eval rm uniform density`)")
    if batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    if threads is not None and threads < 1:
        raise ConfigError("--threads must be at least 1")
    dev = resolve_device(device)
    notes: list[str] = []
    judge = load_judge(ws)

    def check(rel: str) -> None:
        problem = judge.check_input(rel)
        if problem is not None:
            if not force or judge.current_sha(rel) is None:
                raise problem
            notes.append(f"forced: {problem.message}")

    # -- which models, which held-out set -----------------------------------------------------------------
    models: list[tuple[str, Path, int, dict[str, Any]]] = []
    seen: set[Path] = set()
    for arg in checkpoints:
        if is_hf_ref(arg):  # an off-the-shelf reward model: it records no split and no inputs
            name, directory, step, meta = hf_scorer(arg, trust_remote_code=trust_remote_code, flag=CKPT)
        else:
            name, directory = resolve_checkpoint(ws, arg)
            step, meta = _read_scorer_meta(directory)
            rel = workspace_rel(ws, checkpoint_paths(directory, step)["model"])
            if rel is not None:  # a checkpoint inside the workspace must be the one its training run recorded
                for f in judge.checkpoint_files(rel):  # its meta too: it holds the split and --max-len scored with
                    check(f)
        if directory in seen:
            continue
        seen.add(directory)
        models.append((name, directory, step, meta))
    split_of = [m for m in models if "heldout" in m[3]]
    specs = {(m[3]["heldout"]["seed"], m[3]["heldout"]["val_ratio"]) for m in split_of}
    if len(specs) > 1:
        desc = ", ".join(f"{m[0]}: --seed {m[3]['heldout']['seed']} --val-ratio {m[3]['heldout']['val_ratio']}"
                         for m in split_of)
        raise KatError(
            f"the models were split with different held-out settings ({desc}), so they share no held-out set",
            hint="train them with the same --seed and --val-ratio",
        )
    if specs:
        seed, val_ratio = next(iter(specs))
    else:  # Hugging Face models only: the split kat's training stages make by default
        seed, val_ratio = TrainConfig.seed, TrainConfig.val_ratio
        notes.append(f"no model records a training split: held-out pairs from kat's default --seed {seed} "
                     f"--val-ratio {val_ratio}")
    check(P.PAIRS)
    pairs_sha = judge.current_sha(P.PAIRS)
    for name, _, _, meta in models:
        trained_on = meta.get("inputs", {}).get(P.PAIRS)
        if trained_on is not None and trained_on != pairs_sha:
            message = f"{name} was trained on another version of {P.PAIRS}; its held-out pairs are not these"
            if not force:
                raise KatError(message, hint=f"retrain it with `{_train_command(meta)} --name {name}`, or pass --force")
            notes.append(f"forced: {message}")

    pairs = I.read_pairs(ws.abs(P.PAIRS), progress=progress)
    prefix_ids = [p.prefix_id for p in pairs]
    split = split_pairs(prefix_ids, seed=seed, val_ratio=val_ratio)
    held = [pairs[i] for i in split.heldout]
    fingerprint = split.fingerprint([p.id for p in pairs])
    for name, _, _, meta in models:
        if meta.get("heldout", {}).get("fingerprint") not in (None, fingerprint) and not force:
            raise KatError(
                f"{name}'s held-out set differs from the one the current pairs give",
                hint=f"retrain it with `{_train_command(meta)} --name {name}`, or pass --force",
            )

    quintile_ranges = None
    quintile_of: list[int] | None = None
    held_pids = [p.prefix_id for p in held]
    weights = fresh_density_weights(ws, judge, held_pids, notes)
    if weights is not None:
        quintile_of, quintile_ranges = density_quintiles(held_pids, weights)

    # -- score ---------------------------------------------------------------------------------------------
    threads_before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    rows = [(p.messages, p.chosen, p.rejected) for p in held]
    encoded: dict[tuple[str, int, int], Any] = {}
    results: list[ModelEval] = []
    try:
        for name, directory, step, meta in models:
            dpo = meta.get("objective") in IMPLICIT_REWARD_OBJECTIVES
            rm, tokenizer = (None, rm_tokenizer(ws, name, directory, meta)) if dpo else load_scorer(
                ws, name, directory, step, meta, device=dev)
            cfg = meta.get("config", {})
            max_len, max_resp = rm_lengths(meta)
            key = (tokenizer.sha256(), max_len, max_resp)
            if key not in encoded:
                encoded[key] = encode_pairs(
                    tokenizer, rows, ids=[p.id for p in held], max_len=max_len, max_response_len=max_resp,
                    progress=progress,
                )
            if dpo:
                report = _score_dpo(
                    ws, name, directory, step, meta, encoded[key], split.heldout, held, weights, pairs_sha,
                    batch_size=batch_size, pad_id=tokenizer.pad_token_id, device=dev, progress=progress,
                    notes=notes,
                )
            else:
                report = evaluate(
                    rm, encoded[key], np.arange(len(held)), sources=[p.src for p in held],
                    prefix_ids=[p.prefix_id for p in held], weights=weights, batch_size=batch_size,
                    pad_id=tokenizer.pad_token_id, device=dev, progress=progress,
                )
                del rm
            hf = meta.get("hf") if meta.get("kind") == AS_IS_KIND else None
            weighting = "–" if hf is not None else str(cfg.get("pair_weighting", "?"))
            results.append(ModelEval(name, directory, step, weighting, report, hf=hf))
    finally:
        torch.set_num_threads(threads_before)
    comparisons = [
        {
            "a": results[0].name,
            "b": other.name,
            **compare(
                results[0].report.margins, other.report.margins, sources=[p.src for p in held],
                prefix_ids=[p.prefix_id for p in held], quintiles=quintile_of,
            ),
        }
        for other in results[1:]
    ]
    heldout = {
        "seed": seed, "val_ratio": val_ratio, "pairs": len(held), "prompts": len({p.prefix_id for p in held}),
        "fingerprint": fingerprint,
    }
    return EvalRMResult(
        heldout=heldout, models=results, quintile_ranges=quintile_ranges, notes=notes, comparisons=comparisons
    )
