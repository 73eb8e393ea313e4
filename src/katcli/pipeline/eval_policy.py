"""`kat eval policy`: sample several policies on the same held-out prompts and compare quality and diversity.

POLICY arguments are resolved by `katcli.pipeline.policies` (run names first, then paths; `hf:NAME|DIR` a Hugging
Face causal LM as it is). A reward model (`--rm`) is a run name under `rm_checkpoints/`, a directory, or `hf:NAME|DIR`
(an off-the-shelf sequence classifier, as for `kat eval rm`).

Prompts: the held-out prompts of the shared prompt-level split (`katcli.train.split`; seed and val_ratio from the
policies' metas when they record one, all of which must agree, else `--seed` and 0.05), drawn stratified by density
quintile (`katcli.evaluation.prompts`), the same prompts for every policy. Each policy's replies are written to
`eval/policy/<kind>-<name>/generations.jsonl` through `StageRun` (atomically, under the workspace lock, recorded
in the manifest as `eval-policy/<kind>-<name>`), beside `evaluation.json`: the `kat.eval.policy/1` document of the
whole evaluation (`recorded_document`), the same in every policy's directory; nothing else is written. Sampling, scoring and measures are
`katcli.evaluation`; this module wires files, checks and the manifest. It knows nothing about Typer or Rich.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from katcli.errors import ConfigError, KatError
from katcli.evaluation.measures import SCHEMA
from katcli.model.hf import AS_IS_KIND, is_hf_ref
from katcli.pipeline.eval_rm import fresh_density_weights, hf_scorer, load_scorer, resolve_checkpoint, workspace_rel
from katcli.pipeline.policies import PolicyRef, resolve_policy, unique_labels
from katcli.pipeline.train_grpo import trained_reward_model
from katcli.pipeline.upstream import load_judge
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P

STAGE = "eval-policy"
GENERATIONS = "generations.jsonl"
DEFAULT_VAL_RATIO = 0.05

Embedder = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class EvalPolicyConfig:
    policies: tuple[str, ...]
    rms: tuple[str, ...] = ()
    baseline: str | None = None
    prompts: int = 200
    samples: int = 4
    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float | None = None
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    batch_size: int = 16
    force: bool = False
    trust_remote_code: bool = False  # for hf: models that run their own code (recorded with the evaluation)

    def __post_init__(self) -> None:
        if not self.policies:
            raise ConfigError("name at least one policy (e.g. `kat eval policy sft/uniform dpo/density`)")
        if self.prompts < 1:
            raise ConfigError("--prompts must be at least 1")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("--threads must be at least 1")


@dataclass
class EvalPolicyResult:
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return self.data


def default_embedder(device: str) -> tuple[Embedder, dict[str, Any]]:
    """`kat embed`'s sentence-transformers model (the bundled MiniLM offline), as texts → unit rows."""
    from katcli.density.encoder import DEFAULT_MODEL, encode_fn, resolve_and_load

    loaded = resolve_and_load(DEFAULT_MODEL, device)
    return encode_fn(loaded, 64), {"model": DEFAULT_MODEL, "source": loaded.source.describe()}


def run_eval_policy(
    ws: Workspace,
    cfg: EvalPolicyConfig,
    *,
    embedder: Embedder | None = None,
    progress: ProgressFn = no_progress,
) -> EvalPolicyResult:
    """Generate, score, measure and compare; write each policy's generations; return the `kat.eval.policy/1` data."""
    import torch

    from katcli.evaluation.generate import GenerationConfig, generate_replies
    from katcli.evaluation.jackknife import GROUPS as JACKKNIFE_GROUPS
    from katcli.evaluation.measures import PolicyOutputs, compare, group_sizes, measure_list
    from katcli.evaluation.policy import load_policy, policy_meta
    from katcli.evaluation.power import METHOD as POWER_METHOD
    from katcli.evaluation.prompts import draw_prompts
    from katcli.evaluation.scoring import score_replies
    from katcli.train.rm_scoring import RewardScorer
    from katcli.model.checkpoint import checkpoint_paths
    from katcli.train import inputs as I
    from katcli.train.ddp import resolve_device
    from katcli.train.rm_checkpoint import read_rm_meta
    from katcli.train.metrics import QUINTILE_KEYS, quintile_edges
    from katcli.train.split import split_pairs

    gen_cfg = GenerationConfig(
        samples=cfg.samples, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
        seed=cfg.seed, batch_prompts=cfg.batch_size,
    )
    dev = resolve_device(cfg.device)
    notes: list[str] = []
    judge = load_judge(ws)

    def check(rel: str) -> None:
        problem = judge.check_input(rel)
        if problem is not None:
            if not cfg.force or judge.current_sha(rel) is None:
                raise problem
            notes.append(f"forced: {problem.message}")

    def check_model_file(label: str, model_file: Path) -> None:
        rel = workspace_rel(ws, model_file)
        if rel is None:
            return
        if judge.manifest.owner_of(rel) is None:
            notes.append(f"{label}: {rel} is not recorded in the manifest, so its freshness is not checked")
        else:
            for f in judge.checkpoint_files(rel):  # the meta and tokenizer beside it are read too
                check(f)

    # -- policies, baseline, reward models --------------------------------------------------------------------
    from katcli.pipeline.arms import ONE_SEED_NOTE, expand_arms
    from katcli.pipeline.runs import POLICY_STAGES

    policy_args, arms = expand_arms(ws, cfg.policies, POLICY_STAGES)
    base_arg = cfg.baseline
    if base_arg is not None:
        (base_arg, *_), base_arms = expand_arms(ws, [base_arg], POLICY_STAGES)
        arms = base_arms + [a for a in arms if a.name not in {b.name for b in base_arms}]
    refs: list[PolicyRef] = []
    for arg in policy_args:
        ref = resolve_policy(ws, arg, trust_remote_code=cfg.trust_remote_code)
        if all(r.directory != ref.directory for r in refs):
            refs.append(ref)
    if base_arg is not None:
        base_ref = resolve_policy(ws, base_arg, trust_remote_code=cfg.trust_remote_code)
        if all(r.directory != base_ref.directory for r in refs):
            refs.insert(0, base_ref)
        baseline = next(i for i, r in enumerate(refs) if r.directory == base_ref.directory)
    else:
        baseline = 0
    refs = unique_labels(refs)
    metas = []
    for ref in refs:
        step, meta, model_file = policy_meta(ref.directory)
        check_model_file(ref.label, model_file)
        metas.append((step, meta, model_file))

    rms: list[tuple[str, Path, int, dict[str, Any]]] = []
    for arg in cfg.rms:
        if is_hf_ref(arg):  # an off-the-shelf reward model, scored as it is
            name, directory, step, meta = hf_scorer(arg, trust_remote_code=cfg.trust_remote_code, flag="--rm")
        else:
            (arg, *_), rm_arm = expand_arms(ws, [arg], ("rm", "dpo"))
            if rm_arm:  # one judge for every policy: the arm's first replicate
                notes.append(f"--rm {rm_arm[0].name} names an arm: every policy is scored by its replicate {arg}")
            name, directory = resolve_checkpoint(ws, arg)
            step, meta = read_rm_meta(directory)
            check_model_file(f"--rm {name}", checkpoint_paths(directory, step)["model"])
        if any(d == directory for _, d, _, _ in rms):
            continue
        rms.append((name, directory, step, meta))
    if len({r[0] for r in rms}) < len(rms):
        raise KatError("two --rm reward models have the same name", hint="pass one of them by a unique path")
    rm_names = [r[0] for r in rms]
    for ref, (_, meta, _) in zip(refs, metas):
        trained = trained_reward_model(meta)
        if trained is None:
            continue
        trained_rm = str(trained["name"])
        trained_dir = ws.abs(trained["path"]).resolve() if trained.get("path") else None
        same = [n for n, d, _, _ in rms if n == trained_rm or (trained_dir is not None and d.resolve() == trained_dir)]
        if same:
            notes.append(
                f"{ref.label} was trained against the reward model {trained_rm}; its reward under {same[0]} is "
                "optimistic (it learned that model's quirks): judge it with another --rm"
            )
        elif not rms:
            notes.append(f"{ref.label} was trained against {trained_rm}: score with a different --rm")
    if not rms:
        notes.append("no --rm given: no quality measures (pass --rm RUN, ideally one no policy was trained against)")

    # -- the held-out prompts ----------------------------------------------------------------------------------
    specs = {
        (float(m["heldout"]["seed"]), float(m["heldout"]["val_ratio"])): ref.label
        for ref, (_, m, _) in zip(refs, metas)
        if isinstance(m.get("heldout"), dict) and "seed" in m["heldout"] and "val_ratio" in m["heldout"]
    }
    if len(specs) > 1:
        fp = {ref.label: str((m.get("heldout") or {}).get("fingerprint"))[:12] for ref, (_, m, _) in zip(refs, metas)}
        desc = ", ".join(f"{label}: split seed {int(s)} --val-ratio {v} (held-out fingerprint {fp[label]})"
                         for (s, v), label in specs.items())
        raise KatError(
            f"the policies were trained with different held-out splits ({desc}), so they share no held-out prompts",
            hint="train them with the same --split-seed and --val-ratio",
        )
    if specs:
        split_seed, val_ratio = next(iter(specs))
        split_seed, split_from = int(split_seed), "policy metas"
    else:
        split_seed, val_ratio, split_from = cfg.seed, DEFAULT_VAL_RATIO, "--seed and the default --val-ratio"
        notes.append(
            f"no policy records its training split: held-out prompts from --seed {cfg.seed}, --val-ratio "
            f"{DEFAULT_VAL_RATIO} (kat's default)"
        )
    check(P.PAIRS)
    pairs_sha = judge.current_sha(P.PAIRS)
    for ref, (_, meta, _) in zip(refs, metas):
        trained_on = (meta.get("inputs") or {}).get(P.PAIRS) if isinstance(meta.get("inputs"), dict) else None
        if trained_on is not None and trained_on != pairs_sha:
            message = f"{ref.label} was trained on another version of {P.PAIRS}; its held-out prompts are not these"
            if not cfg.force:
                raise KatError(message, hint="retrain it on the current pairs, or pass --force")
            notes.append(f"forced: {message}")
    pairs = I.read_pairs(ws.abs(P.PAIRS), progress=progress)
    split = split_pairs([p.prefix_id for p in pairs], seed=split_seed, val_ratio=val_ratio)
    fingerprint = split.fingerprint([p.id for p in pairs])
    for ref, (_, meta, _) in zip(refs, metas):
        recorded = (meta.get("heldout") or {}).get("fingerprint") if isinstance(meta.get("heldout"), dict) else None
        if recorded not in (None, fingerprint):
            if not cfg.force:
                raise KatError(
                    f"{ref.label}'s held-out set differs from the one the current pairs give",
                    hint="retrain it on the current pairs, or pass --force",
                )
            notes.append(f"forced: {ref.label}'s held-out set differs from the one the current pairs give")
    for name, _, _, meta in rms:
        held = meta.get("heldout", {})
        if meta.get("kind") == AS_IS_KIND:
            notes.append(f"--rm {name} is a Hugging Face model as it is: kat cannot tell whether it was trained on "
                         "these prompts")
        elif (held.get("seed"), held.get("val_ratio")) != (split_seed, val_ratio):
            notes.append(
                f"--rm {name} was trained with another split (--seed {held.get('seed')} --val-ratio "
                f"{held.get('val_ratio')}): some evaluation prompts may be among its training prompts"
            )
    first: dict[str, Any] = {}
    for i in split.heldout:
        first.setdefault(pairs[i].prefix_id, pairs[i])
    weights = fresh_density_weights(ws, judge, list(first), notes)
    draw = draw_prompts(list(first), cfg.prompts, seed=cfg.seed, weights=weights)
    if not draw.stratified:
        notes.append("prompts drawn uniformly (seeded), not stratified by density quintile")
    elif len(draw.ids) < cfg.prompts:
        notes.append(f"only {len(draw.ids)} held-out prompts exist: all of them are used")
    elif min(draw.available) * 5 < cfg.prompts:
        notes.append(f"some quintiles hold fewer than {cfg.prompts // 5} held-out prompts: the others make up the rest")
    prompt_msgs = [first[pid].messages for pid in draw.ids]
    sources = [first[pid].src for pid in draw.ids]

    # -- generate, score, embed -------------------------------------------------------------------------------
    threads_before = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    timings = {"generate_s": 0.0, "score_s": 0.0, "embed_load_s": 0.0, "embed_s": 0.0, "metrics_s": 0.0}
    outputs: list[PolicyOutputs] = []
    policies_json: list[dict[str, Any]] = []
    try:
        for ref, (step, meta, model_file) in zip(refs, metas):
            loaded = load_policy(ref.directory, device=dev, trust_remote_code=cfg.trust_remote_code)
            t0 = time.perf_counter()
            replies, counts = generate_replies(
                loaded.model, loaded.tokenizer, prompt_msgs, draw.ids, gen_cfg, name=ref.label, progress=progress
            )
            seconds = time.perf_counter() - t0
            timings["generate_s"] += seconds
            del loaded
            outputs.append(PolicyOutputs(ref.label, replies))
            policies_json.append(
                {
                    "name": ref.label, "kind": ref.kind, "path": str(ref.directory), "step": step,
                    "meta_kind": meta.get("kind"), "generations": f"{P.EVAL_POLICY_DIR}/{ref.run}/{GENERATIONS}",
                    "tokens_generated": counts["tokens"], "prompts_trimmed": counts["prompts_trimmed"],
                    "tokens_per_s": round(counts["tokens"] / seconds, 2) if seconds > 0 else None,
                }
            )
        for name, directory, step, meta in rms:
            t0 = time.perf_counter()
            rm, tokenizer = load_scorer(ws, name, directory, step, meta, device=dev)
            scorer = RewardScorer.from_meta(rm, tokenizer, meta, batch_size=32)
            for out in outputs:
                out.rewards[name] = score_replies(
                    scorer, prompt_msgs, [[r.text for r in rs] for rs in out.replies], progress=progress,
                    task=f"scoring {out.name} with {name}",
                )
            del rm, scorer
            timings["score_s"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        embed_info: dict[str, Any] = {"model": "injected"}
        if embedder is None:
            embedder, embed_info = default_embedder("cuda" if dev.type == "cuda" else "cpu")
        timings["embed_load_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for k, out in enumerate(outputs):
            texts = [r.text for rs in out.replies for r in rs]
            emb = np.asarray(embedder(texts), dtype=np.float32)
            out.embeddings = emb.reshape(len(out.replies), cfg.samples, -1)
            progress("embedding replies", k + 1, len(outputs))
        timings["embed_s"] = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads_before)

    t0 = time.perf_counter()
    results = compare(
        outputs, baseline, sources=sources, quintiles=draw.quintile, rm_names=rm_names, seed=cfg.seed
    )
    arm_json, arm_cmp = _arm_results(ws, cfg, arms, refs, outputs, baseline, sources, draw.quintile, rm_names)
    if not arm_json:
        notes.append(ONE_SEED_NOTE)
    timings["metrics_s"] = time.perf_counter() - t0
    timings = {k: round(v, 3) for k, v in timings.items()}

    data: dict[str, Any] = {
        "schema": SCHEMA,
        "heldout": {
            "seed": split_seed, "val_ratio": val_ratio, "from": split_from, "prompts": len(first),
            "fingerprint": fingerprint,
        },
        "prompts": {
            "n": len(draw.ids), "requested": cfg.prompts, "stratified": draw.stratified,
            "per_quintile": draw.per_quintile() or None, "quintile_weight_ranges": draw.quintile_ranges,
            **({"quintile_edges": quintile_edges(list(first), weights), "quintiles": list(QUINTILE_KEYS)}
               if draw.stratified else {}),
            "ids": list(draw.ids),
        },
        "sampling": {
            "samples": cfg.samples, "max_new_tokens": cfg.max_new_tokens, "temperature": cfg.temperature,
            "top_p": cfg.top_p, "seed": cfg.seed,
        },
        "baseline": refs[baseline].label,
        "policies": policies_json,
        "reward_models": [
            {"name": n, "path": str(d), "step": s, **({"hf": m["hf"]} if m.get("kind") == AS_IS_KIND else {})}
            for n, d, s, m in rms
        ],
        "embedding_model": embed_info,
        "groups": dict(group_sizes(sources, draw.quintile)),
        "measures": [
            {"key": m.key, "family": m.family, "label": m.label, "higher": m.higher, "per_prompt": m.per_prompt}
            for m in measure_list(rm_names)
        ],
        "results": results,
        **({"arms": arm_json, "arm_comparisons": arm_cmp} if arm_json else {}),
        "bootstrap": {
            "resamples": 1000, "set_resamples": None, "seed": cfg.seed, "unit": "prompt",
            "set_measures": f"delete-a-group jackknife over prompts ({JACKKNIFE_GROUPS} blocks), t interval on the "
            "logit scale of the measure's range", "power": POWER_METHOD,
        },
        "timings": timings,
        "notes": notes,
    }
    _write_generations(ws, cfg, refs, outputs, draw, sources, data)
    return EvalPolicyResult(data)


def _arm_results(
    ws: Workspace, cfg: EvalPolicyConfig, arms: Sequence[Any], refs: Sequence[PolicyRef], outputs: Sequence[Any],
    baseline: int, sources: Sequence[str], quintiles: Sequence[int | None], rm_names: Sequence[str],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each arm's replicates and across-seed figures, and every arm against the first (the baseline's when it is
    one); nothing when no argument named replicates."""
    from katcli.evaluation.policy_arms import arm_difference, arm_figures

    if not any(len(a.replicates) > 1 for a in arms):
        return [], []
    index = {r.directory: i for i, r in enumerate(refs)}
    by_arm = []
    for arm in arms:
        found = {seed: index[resolve_policy(ws, arg, trust_remote_code=cfg.trust_remote_code).directory]
                 for seed, arg in arm.replicates}
        by_arm.append((arm, {seed: outputs[i] for seed, i in found.items()}, found))
    kw = dict(sources=sources, quintiles=quintiles, rm_names=rm_names, seed=cfg.seed)
    base = outputs[baseline]
    arm_json = []
    for arm, reps, found in by_arm:
        entry: dict[str, Any] = {"name": arm.name, "replicates": [
            {"seed": seed, "run": refs[i].label} for seed, i in sorted(found.items())]}
        if len(reps) > 1:
            entry["across_seeds"] = arm_figures([reps[s] for s in sorted(reps)], base, **kw)
        arm_json.append(entry)
    first = by_arm[0]
    comparisons = [{"a": first[0].name, "b": arm.name, **arm_difference(reps, first[1], base, **kw)}
                   for arm, reps, _ in by_arm[1:]]
    return arm_json, comparisons


def recorded_document(ws: Workspace, data: dict[str, Any]) -> dict[str, Any]:
    """The document as `evaluation.json` keeps it: without what the wall clock decides (`timings`, each policy's
    `tokens_per_s`), so the same evaluation writes the same bytes, and model paths as metas record them
    (workspace-relative inside the workspace), so it reads the same in a copy of the workspace."""
    from katcli.pipeline.runs import recorded_path

    doc = {k: v for k, v in data.items() if k != "timings"}
    doc["policies"] = [
        {**{k: v for k, v in p.items() if k != "tokens_per_s"}, "path": recorded_path(ws, Path(p["path"]))}
        for p in data["policies"]
    ]
    doc["reward_models"] = [{**r, "path": recorded_path(ws, Path(r["path"]))} for r in data["reward_models"]]
    return doc


def _write_generations(
    ws: Workspace, cfg: EvalPolicyConfig, refs: Sequence[PolicyRef], outputs: Sequence[Any], draw: Any,
    sources: Sequence[str], data: dict[str, Any],
) -> None:
    """One StageRun per policy: its generations file and the evaluation's document, atomically, under the lock,
    recorded with its inputs."""
    from katcli.evaluation.measures import reply_rows
    from katcli.evaluation.policy import policy_meta
    from katcli.model.checkpoint import meta_bytes
    from katcli.pipeline.stage import StageRun

    params = {
        "prompts": cfg.prompts, "samples": cfg.samples, "max_new_tokens": cfg.max_new_tokens,
        "temperature": cfg.temperature, "top_p": cfg.top_p, "seed": cfg.seed,
        "heldout": {k: data["heldout"][k] for k in ("seed", "val_ratio")},
        "reward_models": [r["name"] for r in data["reward_models"]],
        **({"trust_remote_code": True} if cfg.trust_remote_code else {}),
    }
    document = meta_bytes(recorded_document(ws, data))
    for ref, out, pj in zip(refs, outputs, data["policies"]):
        with StageRun(ws, STAGE, name=ref.run, params={**params, "policy": str(ref.directory)}, force=cfg.force) as run:
            run.input(P.PAIRS)
            for rel in (P.DENSITY_WEIGHTS, P.EMBED_IDS):
                if draw.stratified and ws.abs(rel).is_file():
                    run.input(rel)
            files = [policy_meta(ref.directory)[2]]
            files += [_rm_weights(Path(r["path"]), r) for r in data["reward_models"]]
            for f in files:
                rel = workspace_rel(ws, f)
                if rel is not None and run.judge.manifest.owner_of(rel) is not None:
                    run.input(rel)
                else:
                    run.external_input(f)
            rows = reply_rows(out, draw.ids, draw.quintile, sources)
            rel = pj["generations"]
            with open(run.output(rel), "w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            run.describe(rel, rows=len(rows))
            run.output(f"{P.EVAL_POLICY_DIR}/{ref.run}/{P.EVAL_POLICY_DOCUMENT}").write_bytes(document)
            run.stats.update({"prompts": len(draw.ids), "samples": cfg.samples, "tokens": pj["tokens_generated"]})


def _rm_weights(directory: Path, record: dict[str, Any]) -> Path:
    """The weights file a reward model of the document was read from (an input of every policy's record)."""
    from katcli.model.checkpoint import checkpoint_paths
    from katcli.model.hf import weights_file

    if "hf" in record:
        return weights_file(directory)
    return checkpoint_paths(directory, record["step"])["model"]
