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
from katcli.model.run_meta import IMPLICIT_REWARD_OBJECTIVES  # DPO's every --loss, KTO: implicit reward models
from katcli.pipeline import registry
from katcli.pipeline.heldout import Agreement, HeldOutSet, InputCheck, fresh_density_weights
from katcli.pipeline.upstream import load_judge
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P

SCHEMA = "kat.eval.rm/1"
CKPT = "CKPT"  # how errors name a model argument of `kat eval rm`


@dataclass(frozen=True)
class Scorer:
    """A model that scores pairs (a reward model, a DPO policy, an HF reward model as it is), resolved."""

    name: str
    directory: Path
    step: int  # 0: an HF model as it is
    meta: Any  # katcli.model.run_meta.RunMeta


@dataclass
class ModelEval:
    name: str
    directory: Path
    step: int
    weighting: str
    report: Any  # katcli.train.metrics.EvalReport
    hf: dict[str, Any] | None = None  # a Hugging Face reward model as it is: its source (katcli.model.hf.HFSource)
    weights: str | None = None  # the named weight set it sampled by (`--weights`); None: the default or uniform

    def to_json(self) -> dict[str, Any]:
        out = {
            "name": self.name, "path": str(self.directory), "step": self.step, "weighting": self.weighting,
            **({"weights": self.weights} if self.weights else {}),
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
    arms: list[dict[str, Any]] = field(default_factory=list)  # arguments naming replicates: across-seed figures
    arm_comparisons: list[dict[str, Any]] = field(default_factory=list)  # every arm against the first

    def to_json(self) -> dict[str, Any]:
        out = {
            "schema": SCHEMA,
            "heldout": self.heldout,
            "quintile_weight_ranges": self.quintile_ranges,
            "models": [m.to_json() for m in self.models],
            "comparisons": self.comparisons,
            "notes": self.notes,
        }
        if self.arms:
            out["arms"], out["arm_comparisons"] = self.arms, self.arm_comparisons
        return out


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


_SCORER_HINT = "pass a run of `kat train rm` or `kat train dpo` (a DPO policy is an implicit reward model)"


def read_scorer(ws: Workspace, arg: str, *, trust_remote_code: bool, flag: str = CKPT) -> Scorer:
    """A reward model or a DPO policy by run name or path, or `hf:NAME|DIR`; any other policy is refused (it
    scores no pairs)."""
    from katcli.model.checkpoint import checkpoint_paths
    from katcli.model.hf import is_hf_ref
    from katcli.model.run_meta import POLICY_KIND, RM_KIND
    from katcli.train.run_dir import read_run

    if is_hf_ref(arg):
        return hf_scorer(arg, trust_remote_code=trust_remote_code, flag=flag)
    name, directory = resolve_checkpoint(ws, arg)
    step, meta = read_run(directory, (RM_KIND, POLICY_KIND) if flag == CKPT else (RM_KIND,),
                          hint=_SCORER_HINT if flag == CKPT else "pass a directory written by `kat train rm` "
                          "(e.g. rm_checkpoints/uniform)")
    if meta.kind == POLICY_KIND and not meta.has_implicit_reward:
        raise KatError(
            f"a {meta.objective or 'policy'} policy has no reward to compare pairs with",
            file=str(checkpoint_paths(directory, step)["meta"]), hint=_SCORER_HINT,
        )
    return Scorer(name, directory, step, meta)


def hf_scorer(arg: str, *, trust_remote_code: bool, flag: str) -> Scorer:
    """`hf:NAME|DIR`, an off-the-shelf reward model scored as it is (step 0)."""
    from katcli.pipeline.hf_source import hf_reward_model

    directory, meta = hf_reward_model(
        arg, trust_remote_code=trust_remote_code, flag=flag, label=arg if flag == CKPT else None,
        no_head_hint=f"a causal LM is a reward model only against a reference (β·log π/π_ref): train it with "
        f"`kat train dpo --init {arg}` and evaluate that run (dpo/NAME), or pass an "
        "AutoModelForSequenceClassification with num_labels=1",
    )
    return Scorer(arg, directory, 0, meta)


def scorer_tokenizer(ws: Workspace, s: Scorer) -> Any:
    """The tokenizer a scorer was trained with: the copy beside it (else the workspace's), sha256-checked."""
    from katcli.train.run_dir import run_tokenizer

    return run_tokenizer(s.directory, s.meta, mismatch=f"{s.name}: the tokenizer beside it is not the one it was "
                         "trained with", hint=f"re-run `{_train_command(s.meta)}` for it", fallback=ws.abs(P.TOKENIZER))


def load_scorer(ws: Workspace, s: Scorer, *, device: Any) -> Any:
    """The reward model of a scorer, with its checked tokenizer (`LoadedRun`)."""
    from katcli.train.run_dir import load_run

    tokenizer = None if s.meta.is_as_is else scorer_tokenizer(ws, s)
    return load_run(s.directory, s.meta, step=s.step, role="reward", device=device, tokenizer=tokenizer)


def _train_command(meta: Any) -> str:
    return f"kat train {meta.objective}" if meta.has_implicit_reward else "kat train rm"


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
    """Evaluate every checkpoint on the common held-out set: resolve → held-out set → score → compare."""
    from katcli.devices import resolve_device

    if not checkpoints:
        raise ConfigError("name at least one reward model (e.g. `kat eval rm uniform density`)")
    from katcli.pipeline.arms import expand_arms

    checkpoints, arms = expand_arms(ws, checkpoints, ("rm", "dpo"))
    if batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    if threads is not None and threads < 1:
        raise ConfigError("--threads must be at least 1")
    dev = resolve_device(device)
    notes: list[str] = []
    check = InputCheck(load_judge(ws), force, notes)
    models = _resolve_models(ws, checkpoints, check, trust_remote_code)
    held, pairs_sha = _heldout_set(ws, models, check, progress)
    weights = fresh_density_weights(ws, check.judge, [p.prefix_id for p in held.held], notes)
    results = _score_all(ws, models, held, weights, pairs_sha, batch_size=batch_size, threads=threads, device=dev,
                         progress=progress, notes=notes)
    return _result(held, weights, results, notes, arms)


def _resolve_models(ws: Workspace, checkpoints: Sequence[str], check: InputCheck, trust_remote_code: bool
                    ) -> list[Scorer]:
    """Each named model once; a checkpoint inside the workspace must be the one its training run recorded."""
    from katcli.model.checkpoint import checkpoint_paths

    models: list[Scorer] = []
    for arg in checkpoints:
        s = read_scorer(ws, arg, trust_remote_code=trust_remote_code)
        if not s.meta.is_as_is:  # an off-the-shelf reward model records no split and no inputs
            rel = workspace_rel(ws, checkpoint_paths(s.directory, s.step)["model"])
            # in kat's own run folders it must be the one its training run recorded (a folder the user names
            # elsewhere in the workspace is their input); its meta too: it holds the split and --max-len scored with
            if rel is not None and (registry.producer_of(rel) is not None
                                    or check.judge.manifest.owner_of(rel) is not None):
                for f in check.judge.checkpoint_files(rel):
                    check(f)
        if all(m.directory != s.directory for m in models):
            models.append(s)
    return models


def _heldout_set(ws: Workspace, models: list[Scorer], check: InputCheck, progress: ProgressFn
                 ) -> tuple[HeldOutSet, str | None]:
    """The held-out pairs every model agrees on (split, pairs version, fingerprint)."""
    from katcli.pipeline.heldout import read_heldout
    from katcli.pipeline.train_config import TrainConfig

    agree = Agreement([(m.name, m.meta) for m in models], check, noun="pairs",
                      retrain=lambda name, meta: f"retrain it with `{_train_command(meta)} --name {name}`")
    spec = agree.split(lambda recorded: "the models were split with different held-out settings ("
                       + ", ".join(f"{n}: split seed {s.seed} --val-ratio {s.val_ratio} (held-out fingerprint "
                                   f"{str(s.fingerprint)[:12]})" for n, s in recorded)
                       + "), so they share no held-out set")
    if spec is None:  # Hugging Face models only: the split kat's training stages make by default
        spec = (TrainConfig.seed, TrainConfig.val_ratio)
        check.notes.append(f"no model records a training split: held-out pairs from kat's default --seed {spec[0]} "
                           f"--val-ratio {spec[1]}")
    pairs_sha = agree.same_pairs()
    held = read_heldout(ws, *spec, progress=progress)
    agree.same_fingerprint(held, note=False)
    return held, pairs_sha


def _score_all(
    ws: Workspace, models: list[Scorer], held: HeldOutSet, weights: Any, pairs_sha: str | None, *,
    batch_size: int, threads: int | None, device: Any, progress: ProgressFn, notes: list[str],
) -> list[ModelEval]:
    """Each model's report on the held-out pairs, encoded once per (tokenizer, lengths)."""
    import torch

    from katcli.train.sequences import encode_pairs

    threads_before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    pairs = held.held
    rows = [(p.messages, p.chosen, p.rejected) for p in pairs]
    encoded: dict[tuple[str, int, int], Any] = {}
    results: list[ModelEval] = []
    try:
        for s in models:
            loaded = None if s.meta.has_implicit_reward else load_scorer(ws, s, device=device)
            tokenizer = scorer_tokenizer(ws, s) if loaded is None else loaded.tokenizer
            max_len, max_resp = s.meta.lengths()
            key = (tokenizer.sha256(), max_len, max_resp)
            if key not in encoded:
                encoded[key] = encode_pairs(tokenizer, rows, ids=[p.id for p in pairs], max_len=max_len,
                                            max_response_len=max_resp, progress=progress)
            scoring = dict(batch_size=batch_size, pad_id=tokenizer.pad_token_id, device=device, progress=progress)
            if loaded is None:
                report = _score_dpo(ws, s, encoded[key], held, weights, pairs_sha, notes=notes, **scoring)
            else:
                report = _score_rm(loaded.model, encoded[key], pairs, weights, **scoring)
                del loaded
            results.append(ModelEval(s.name, s.directory, s.step, s.meta.pair_weighting, report, hf=s.meta.hf,
                                     weights=s.meta.weight_set))
    finally:
        torch.set_num_threads(threads_before)
    return results


def _score_rm(rm: Any, enc: Any, pairs: list[Any], weights: Any, **scoring: Any) -> Any:
    import numpy as np

    from katcli.train.evaluate import evaluate

    return evaluate(rm, enc, np.arange(len(pairs)), sources=[p.src for p in pairs],
                    prefix_ids=[p.prefix_id for p in pairs], weights=weights, **scoring)


def _score_dpo(
    ws: Workspace, s: Scorer, enc: Any, held: HeldOutSet, weights: Any, pairs_sha: str | None, *, batch_size: int,
    pad_id: int, device: Any, progress: ProgressFn, notes: list[str],
) -> Any:
    """A DPO or KTO policy as an implicit reward model on the held-out pairs (the same report as a reward model's):
    β(π − ref), or, for the reference-free SimPO and ORPO, β × the reply's mean token log-prob."""
    import numpy as np

    from katcli.pipeline.reference import heldout_reference_logps
    from katcli.train.dpo_losses import DPOLossConfig
    from katcli.train.objective import HeldOut
    from katcli.train.objectives.dpo import implicit_reward_eval
    from katcli.train.run_dir import load_run

    extra = s.meta.extra
    cfg = DPOLossConfig(**extra["dpo"]) if "dpo" in extra else DPOLossConfig(beta=extra["kto"]["beta"])
    ref = None if cfg.reference_free else heldout_reference_logps(  # SimPO, ORPO: β × mean token log-prob
        ws, s.name, s.directory, s.meta, pairs_sha256=pairs_sha, heldout_index=held.split.heldout, enc=enc,
        batch_size=batch_size, pad_id=pad_id, device=device, progress=progress, notes=notes,
    )
    policy = load_run(s.directory, s.meta, step=s.step, tokenizer=False, device=device).model
    pairs = held.held
    rows = HeldOut(np.arange(len(pairs)), [p.src for p in pairs], [p.prefix_id for p in pairs], weights)
    return implicit_reward_eval(
        policy, enc, ref, cfg, rows, batch_size=batch_size, pad_id=pad_id,
        device=device, progress=progress,
    )


def _result(held: HeldOutSet, weights: Any, results: list[ModelEval], notes: list[str], arms: Sequence[Any]
            ) -> EvalRMResult:
    """The document: every model's report, every model after the first against the first, paired, and the arms'
    across-seed figures (`katcli.pipeline.arms`)."""
    from katcli.evaluation.paired import compare_margins
    from katcli.pipeline.arms import ONE_SEED_NOTE, rm_arm_results
    from katcli.train.metrics import QUINTILE_KEYS, density_quintiles, quintile_edges

    pairs = held.held
    quintile_of, quintile_ranges = (None, None)
    if weights is not None:
        quintile_of, quintile_ranges = density_quintiles([p.prefix_id for p in pairs], weights)
    comparisons = [
        {
            "a": results[0].name,
            "b": other.name,
            **compare_margins(
                results[0].report.margins, other.report.margins, sources=[p.src for p in pairs],
                prefix_ids=[p.prefix_id for p in pairs], quintiles=quintile_of,
            ),
        }
        for other in results[1:]
    ]
    heldout = {
        "seed": held.seed, "val_ratio": held.val_ratio, "pairs": len(pairs),
        "prompts": len({p.prefix_id for p in pairs}), "fingerprint": held.fingerprint,
    }
    if weights is not None:  # the one cut every reader uses, and which end is rare
        heldout["quintile_edges"] = quintile_edges([p.prefix_id for p in pairs], weights)
        heldout["quintiles"] = list(QUINTILE_KEYS)
    if any(len(a.replicates) > 1 for a in arms):
        arm_json, arm_cmp = rm_arm_results(arms, results, prefix_ids=[p.prefix_id for p in pairs],
                                           sources=[p.src for p in pairs], quintiles=quintile_of)
    else:
        arm_json, arm_cmp = [], []
        notes.append(ONE_SEED_NOTE)
    return EvalRMResult(
        heldout=heldout, models=results, quintile_ranges=quintile_ranges, notes=notes, comparisons=comparisons,
        arms=arm_json, arm_comparisons=arm_cmp,
    )
