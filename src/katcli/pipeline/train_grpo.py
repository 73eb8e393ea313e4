"""The `grpo` stage: on-policy RL against a frozen reward model, uniform or density-aware, into `grpo_checkpoints/`.

Items are the unique prompts of the shared training split (the held-out prompts are never trained on), drawn each
step by the shared weighted sampler (uniform, or ∝ density weight with `--density-aware`); `--prompts-per-step`
is the sampler's batch. For each prompt the policy samples `--group-size` replies (`katcli.train.objectives.grpo`),
the reward model `--rm` scores them with its own tokenizer and truncation (`katcli.train.rm_scoring`), and the
clipped, KL-regularised GRPO loss (`katcli.train.grpo_losses`) updates the policy. The reference for the KL term is
`--ref` or the starting model, frozen; `--beta 0` loads none. Either may be a Hugging Face model as it is
(`--rm hf:…` a sequence classifier with one label, `--ref hf:…` a causal LM with the policy's vocabulary).
Evaluation: greedy and sampled replies to a fixed set of held-out prompts, scored by the same reward model, per
source and per density quintile (`katcli.train.policy_eval`). The result is a plain GPT checkpoint (kind
`kat-policy`).

Prompts are rendered with the policy's tokenizer and fitted by the one truncation rule (`fit_responses`) so that
prompt + `--max-new-tokens` fits `--max-len`. Everything else (ranks, split, sampler, resume, records) is
`katcli.pipeline.training`. This module knows nothing about Typer or Rich.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from katcli.errors import KatError
from katcli.model.run_meta import POLICY_KIND
from katcli.pipeline.stage import record_input
from katcli.pipeline.train_config import TrainGRPOConfig
from katcli.pipeline.training import Built, Prepared, StepCallback, TrainingStage, TrainResult, run_training
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P

STAGE = "grpo"


def tiny_grpo_config(**overrides: Any) -> TrainGRPOConfig:
    """A configuration that trains in seconds on 2 CPU cores from a tiny SFT policy (smoke tests, quickstart)."""
    base: dict[str, Any] = dict(
        rm="uniform", init="sft/uniform", max_steps=20, batch_size=8, group_size=8, max_new_tokens=10, max_len=64,
        lr=3e-3, warmup_steps=0, beta=0.0, val_ratio=0.2, eval_every=0, save_every=0, eval_prompts=32,
        device="cpu", threads=1,
    )
    base.update(overrides)
    return TrainGRPOConfig(**base)


def _load_rm(prep: Prepared) -> tuple[Any, dict[str, Any]]:
    """(the --rm reward model as a `LoadedRun`, what this run records of it), scoring in the run's --dtype (so does
    a critic copied from it); refused when stale."""
    from katcli.model.gpt import set_compute_dtype

    rm, info = _resolve_rm(prep)
    set_compute_dtype(rm.model, prep.compute_dtype)
    return rm, info


def _resolve_rm(prep: Prepared) -> tuple[Any, dict[str, Any]]:
    """The --rm reward model, loaded and checked against its recorded files, and what this run records of it."""
    from katcli.model.checkpoint import checkpoint_paths
    from katcli.model.hf import is_hf_ref
    from katcli.pipeline.hf_source import hf_reward_model, record_hf_inputs
    from katcli.pipeline.runs import recorded_path, resolve_run
    from katcli.model.run_meta import RM_KIND
    from katcli.train.run_dir import load_run, read_run, run_tokenizer

    cfg: TrainGRPOConfig = prep.cfg
    if is_hf_ref(cfg.rm):  # an off-the-shelf reward model, as it is
        directory, meta = hf_reward_model(
            str(cfg.rm), trust_remote_code=cfg.trust_remote_code, flag="--rm",
            no_head_hint=f"pass an AutoModelForSequenceClassification with num_labels=1 (e.g. an OpenAssistant "
            f"DeBERTa reward model), or a run of `kat train rm` (--init {cfg.rm} trains one from this model)",
        )
        record_hf_inputs(prep.ws, prep.run, directory)
        loaded = load_run(directory, meta, role="reward", device=prep.dist.device)
        return loaded, {"name": str(cfg.rm), "path": recorded_path(prep.ws, directory), "step": None, "hf": meta.hf}
    name, directory = resolve_run(prep.ws, str(cfg.rm), ("rm",), flag="--rm")
    try:
        step, meta = read_run(directory, (RM_KIND,), hint="pass a directory written by `kat train rm` (e.g. "
                              "rm_checkpoints/uniform)")
    except KatError as exc:
        raise KatError(f"--rm {cfg.rm}: {exc.message}", file=exc.file, hint=exc.hint) from None
    files = checkpoint_paths(directory, step)
    tok_path = directory / P.TOKENIZER_FILE
    if not tok_path.is_file():
        raise KatError(f"--rm {cfg.rm}: no {P.TOKENIZER_FILE} beside the reward model", file=str(directory),
                       hint="re-run `kat train rm` for it")
    for path in (files["model"], files["meta"], tok_path):
        record_input(prep.ws, prep.run, path)
    judge = getattr(prep.run, "judge", None)
    trained_on = meta.trained_on(P.PAIRS)
    if judge is not None and trained_on is not None and trained_on != judge.current_sha(P.PAIRS):
        raise KatError(
            f"--rm {cfg.rm} was trained on another version of {P.PAIRS}, so its rewards (and its held-out "
            "prompts) belong to other pairs",
            file=str(files["meta"]),
            hint=f"retrain it with `kat train rm --name {name}` on the current pairs",
        )
    rm_tok = run_tokenizer(directory, meta, mismatch=f"--rm {cfg.rm}: the tokenizer beside it is not the one it was "
                           "trained with", hint="re-run `kat train rm` for it")
    if meta.split is None or meta.split.spec != (cfg.split_seed, cfg.val_ratio):
        seed, ratio = (meta.split.seed, meta.split.val_ratio) if meta.split is not None else (None, None)
        prep.notes.append(
            f"--rm {name} was split with split seed {seed} --val-ratio {ratio}: some of "
            "this run's held-out prompts may be among the reward model's training prompts"
        )
    loaded = load_run(directory, meta, step=step, role="reward", device=prep.dist.device, tokenizer=rm_tok)
    return loaded, {"name": name, "path": recorded_path(prep.ws, directory), "step": step}


def _load_ref(prep: Prepared, coef: float | None = None, flag: str = "--beta") -> tuple[Any, dict[str, Any] | None]:
    """The frozen KL reference: --ref, else a copy of the starting model; none when the KL weight is 0."""
    from katcli.pipeline.reference import resolve_reference
    from katcli.pipeline.runs import recorded_path

    cfg = prep.cfg
    if (cfg.beta if coef is None else coef) == 0:
        if cfg.ref is not None:
            prep.notes.append(f"--ref is not used with {flag} 0 (no KL term, so no reference is loaded)")
        return None, None
    if cfg.ref is None:
        if prep.lora is not None:  # one copy of the weights: the policy itself with its adapters off
            from katcli.model.lora import WithoutAdapters

            return WithoutAdapters(prep.model), {"same_as": "init", "adapters_disabled": True, **prep.init_info}
        return _placed(prep, copy.deepcopy(prep.model)), {"same_as": "init", **prep.init_info}
    checked = resolve_reference(prep, cfg.ref)
    info = {"name": checked.name, "path": recorded_path(prep.ws, checked.directory), "step": checked.step}
    if checked.hf is not None:
        info["hf"] = checked.hf
    return _placed(prep, checked.load()), info  # kat's GPT or an HF causal LM, with the checked tokenizer


def _placed(prep: Prepared, ref: Any) -> Any:
    """The frozen reference on this rank's device in the run's precision: whole, or under --fsdp sharded like the
    policy (a whole copy per GPU would defeat --fsdp for exactly the models that need it)."""
    from katcli.model.gpt import set_compute_dtype
    from katcli.train.fsdp import shard_model

    set_compute_dtype(ref, prep.compute_dtype)
    if prep.cfg.fsdp:  # the copy is still on the CPU (so is the policy): each rank moves only its shard
        shard_model(ref.requires_grad_(False), device=prep.dist.device, world_size=prep.dist.world_size)
        return ref
    return ref.to(prep.dist.device)


def _fit_prompt(tokenizer: Any, messages: Any, cfg: TrainGRPOConfig) -> tuple[list[int], bool]:
    from katcli.train.sequences import USER_START, fit_responses

    prefix = tokenizer.render_for_completion(list(messages))
    # The one truncation rule, with the reply's room reserved: the stop token is the reply's last token.
    fitted, _, trim = fit_responses(
        prefix, [[0] * (cfg.max_new_tokens - 1)], bos=tokenizer.bos_token_id,
        user_start=tokenizer.encode_special(USER_START), max_len=cfg.max_len,
        max_response_len=cfg.max_new_tokens - 1,
    )
    return fitted, trim.prefix_trimmed


@dataclass
class RolloutPrompts:
    """The prompts an on-policy stage (GRPO, PPO) rolls out and evaluates on, fitted to its context."""

    train_rows: list[int]  # one pair index per unique training prompt
    held_rows: list[int]  # the fixed, seeded held-out evaluation prompts
    tokens: dict[int, list[int]]
    item_pids: list[str]
    quintiles: Any  # numpy int64 [train prompts] or None
    trimmed: int
    edges: Any = None  # the held-out set's quintile edges (None without density weights)


def rollout_prompts(prep: Prepared, cfg: Any) -> RolloutPrompts:
    from katcli.train.metrics import density_quintiles, quintile_edges
    from katcli.train.policy_eval import pick_eval_prompts

    def unique(indices: Any) -> list[int]:
        first: dict[str, int] = {}
        for i in indices:
            first.setdefault(prep.prefix_ids[i], int(i))
        return list(first.values())

    train_rows = unique(prep.split.train)
    held_rows = [prep.split.heldout[k] for k in pick_eval_prompts(
        [prep.prefix_ids[i] for i in prep.split.heldout], cfg.eval_prompts, seed=cfg.seed)]
    trimmed = 0
    tokens: dict[int, list[int]] = {}
    for i in train_rows + held_rows:
        tokens[i], cut = _fit_prompt(prep.tokenizer, prep.pairs[i].messages, cfg)
        trimmed += cut
    if trimmed:
        prep.notes.append(
            f"{trimmed:,} prompts were trimmed from the left to leave --max-new-tokens {cfg.max_new_tokens} "
            f"within --max-len {cfg.max_len}"
        )
    item_pids = [prep.prefix_ids[i] for i in train_rows]
    held_pids = [prep.prefix_ids[i] for i in prep.split.heldout]
    # One cut for every reader: the held-out set's quintile edges, for the evaluation prompts and the rollouts.
    cut_on = prep.quintile_weights if prep.cfg.weights is not None else prep.weights  # always the default set's
    edges = None
    if cut_on is not None and all(pid in cut_on for pid in held_pids):
        edges = quintile_edges(held_pids, cut_on)
    quintiles = None
    if cut_on is not None and all(pid in cut_on for pid in item_pids):
        quintiles = density_quintiles(item_pids, cut_on, edges)[0]
    return RolloutPrompts(train_rows, held_rows, tokens, item_pids, quintiles, trimmed, edges)


def policy_evaluator(prep: Prepared, cfg: Any, scorer: Any, rp: RolloutPrompts) -> Any:
    from katcli.train.policy_eval import PolicyEvaluator

    return PolicyEvaluator(
        prep.tokenizer, scorer, [prep.pairs[i].messages for i in rp.held_rows], [rp.tokens[i] for i in rp.held_rows],
        [prep.prefix_ids[i] for i in rp.held_rows], [prep.pairs[i].src for i in rp.held_rows],
        sampling=cfg.sampling_config(), samples=cfg.eval_samples, seed=cfg.seed, weights=prep.eval_weights,
        edges=rp.edges if prep.eval_weights is not None else None,
        batch_size=max(prep.micro_batch_size, 8), dist=prep.dist, progress=prep.progress,
    )


def _build(prep: Prepared) -> Built:
    import numpy as np

    from katcli.train.objectives.grpo import GRPOObjective
    from katcli.train.rm_scoring import RewardScorer

    cfg: TrainGRPOConfig = prep.cfg
    rm, rm_info = _load_rm(prep)
    ref, ref_info = _load_ref(prep)
    scorer = RewardScorer.from_meta(rm.model, rm.tokenizer, rm.meta,
                                    batch_size=max(prep.micro_batch_size * cfg.group_size, 8))
    rp = rollout_prompts(prep, cfg)
    train_rows, held_rows, tokens = rp.train_rows, rp.held_rows, rp.tokens
    objective = GRPOObjective(
        prep.model, prep.tokenizer, prompts=[prep.pairs[i].messages for i in train_rows],
        prompt_tokens=[tokens[i] for i in train_rows], prompt_ids=rp.item_pids, scorer=scorer,
        config=cfg.grpo_config(), sampling=cfg.sampling_config(), seed=cfg.seed, ref=ref, quintiles=rp.quintiles,
        evaluator=policy_evaluator(prep, cfg, scorer, rp), dist=prep.dist, progress=prep.progress,
    )
    lengths = np.asarray([len(tokens[i]) for i in train_rows], dtype=np.int64)
    meta = {
        "objective": "grpo",
        "reward_model": rm_info,
        "reference": ref_info,
        "rollout": {"train_prompts": len(train_rows), "eval_prompts": len(held_rows), "prompts_trimmed": rp.trimmed},
    }
    return Built(objective, lengths, meta=meta, stats={"reward_model": rm_info["name"]},
                 item_prefix_ids=rp.item_pids, item_noun="prompts")


GRPO_STAGE = TrainingStage(stage=STAGE, run_root=P.GRPO_DIR, kind=POLICY_KIND, build=_build, what="policies")


def run_train_grpo(
    ws: Workspace,
    cfg: TrainGRPOConfig,
    *,
    progress: ProgressFn = no_progress,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train (or resume) one GRPO policy and record it as `grpo/<name>`; works alone or under torchrun."""
    from katcli.pipeline.runs import default_policy_init

    return run_training(ws, default_policy_init(ws, cfg), GRPO_STAGE, progress=progress, on_step=on_step)
