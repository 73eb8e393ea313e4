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
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from katcli.errors import ConfigError, KatError
from katcli.evaluation.measures import SCHEMA
from katcli.pipeline.eval_rm import Scorer, load_scorer, read_scorer, workspace_rel
from katcli.pipeline.heldout import Agreement, InputCheck, fresh_density_weights
from katcli.pipeline.policies import PolicyRef, resolve_policy, unique_labels
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


@dataclass(frozen=True)
class EvalPolicyResult:
    """The `kat.eval.policy/1` document of one evaluation, typed by its sections."""

    heldout: dict[str, Any]  # the split the prompts came from (seed, val_ratio, from, prompts, fingerprint)
    prompts: dict[str, Any]  # which prompts were drawn, per quintile
    sampling: dict[str, Any]
    baseline: str
    policies: list[dict[str, Any]]
    reward_models: list[dict[str, Any]]
    embedding_model: dict[str, Any]
    groups: dict[str, int]
    measures: list[dict[str, Any]]
    results: Any
    bootstrap: dict[str, Any]
    timings: dict[str, float]
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **{f.name: getattr(self, f.name) for f in fields(self)}}

    @property
    def data(self) -> dict[str, Any]:
        return self.to_json()


@dataclass(frozen=True)
class _Policy:
    ref: PolicyRef
    step: int
    meta: Any  # katcli.model.run_meta.RunMeta
    model_file: Path


@dataclass
class _Prompts:
    held: Any  # katcli.pipeline.heldout.HeldOutSet
    split_from: str
    first: dict[str, Any]  # held-out prompt id → its first pair
    draw: Any  # katcli.evaluation.prompts.PromptDraw

    @property
    def messages(self) -> list[Any]:
        return [self.first[pid].messages for pid in self.draw.ids]

    @property
    def sources(self) -> list[str]:
        return [self.first[pid].src for pid in self.draw.ids]


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
    """Resolve the policies and reward models → the held-out prompts → generate, score, embed → the document;
    write each policy's generations."""
    from katcli.evaluation.generate import GenerationConfig
    from katcli.train.ddp import resolve_device

    gen_cfg = GenerationConfig(
        samples=cfg.samples, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
        seed=cfg.seed, batch_prompts=cfg.batch_size,
    )
    dev = resolve_device(cfg.device)
    notes: list[str] = []
    check = InputCheck(load_judge(ws), cfg.force, notes)
    policies, baseline = _resolve_policies(ws, cfg, check)
    rms = _resolve_rms(ws, cfg, check)
    _trained_against_notes(ws, policies, rms, notes)
    prompts = _heldout_prompts(ws, cfg, policies, rms, check, progress)
    timings = {"generate_s": 0.0, "score_s": 0.0, "embed_load_s": 0.0, "embed_s": 0.0, "metrics_s": 0.0}
    outputs, policies_json, embed_info = _generate_score_embed(
        ws, cfg, gen_cfg, policies, rms, prompts, dev, embedder, timings, progress)
    result = _document(cfg, policies, baseline, rms, prompts, outputs, policies_json, embed_info, timings, notes)
    _write_generations(ws, cfg, [p.ref for p in policies], outputs, prompts.draw, prompts.sources, result.to_json())
    return result


def _check_model_file(ws: Workspace, check: InputCheck, label: str, model_file: Path) -> None:
    """A model file inside the workspace must be the one its run recorded (with the meta and tokenizer beside it)."""
    rel = workspace_rel(ws, model_file)
    if rel is None:
        return
    if check.judge.manifest.owner_of(rel) is None:
        check.notes.append(f"{label}: {rel} is not recorded in the manifest, so its freshness is not checked")
    else:
        for f in check.judge.checkpoint_files(rel):  # the meta and tokenizer beside it are read too
            check(f)


def _resolve_policies(ws: Workspace, cfg: EvalPolicyConfig, check: InputCheck) -> tuple[list[_Policy], int]:
    """The policies (each directory once, the baseline first when it is not one of them) and the baseline's index."""
    from katcli.evaluation.policy import read_policy

    refs: list[PolicyRef] = []
    for arg in cfg.policies:
        ref = resolve_policy(ws, arg, trust_remote_code=cfg.trust_remote_code)
        if all(r.directory != ref.directory for r in refs):
            refs.append(ref)
    baseline = 0
    if cfg.baseline is not None:
        base_ref = resolve_policy(ws, cfg.baseline, trust_remote_code=cfg.trust_remote_code)
        if all(r.directory != base_ref.directory for r in refs):
            refs.insert(0, base_ref)
        baseline = next(i for i, r in enumerate(refs) if r.directory == base_ref.directory)
    policies = []
    for ref in unique_labels(refs):
        step, meta, model_file = read_policy(ref.directory)
        _check_model_file(ws, check, ref.label, model_file)
        policies.append(_Policy(ref, step, meta, model_file))
    return policies, baseline


def _resolve_rms(ws: Workspace, cfg: EvalPolicyConfig, check: InputCheck) -> list[Scorer]:
    from katcli.model.checkpoint import checkpoint_paths

    rms: list[Scorer] = []
    for arg in cfg.rms:
        s = read_scorer(ws, arg, trust_remote_code=cfg.trust_remote_code, flag="--rm")
        if not s.meta.is_as_is:
            _check_model_file(ws, check, f"--rm {s.name}", checkpoint_paths(s.directory, s.step)["model"])
        if all(r.directory != s.directory for r in rms):
            rms.append(s)
    if len({r.name for r in rms}) < len(rms):
        raise KatError("two --rm reward models have the same name", hint="pass one of them by a unique path")
    return rms


def _trained_against_notes(ws: Workspace, policies: list[_Policy], rms: list[Scorer], notes: list[str]) -> None:
    """A policy judged by the reward model it was trained against looks better than it is: say so."""
    for p in policies:
        trained = p.meta.trained_rm
        if trained is None:
            continue
        trained_rm = str(trained["name"])
        trained_dir = ws.abs(trained["path"]).resolve() if trained.get("path") else None
        same = [r.name for r in rms
                if r.name == trained_rm or (trained_dir is not None and r.directory.resolve() == trained_dir)]
        if same:
            notes.append(
                f"{p.ref.label} was trained against the reward model {trained_rm}; its reward under {same[0]} is "
                "optimistic (it learned that model's quirks): judge it with another --rm"
            )
        elif not rms:
            notes.append(f"{p.ref.label} was trained against {trained_rm}: score with a different --rm")
    if not rms:
        notes.append("no --rm given: no quality measures (pass --rm RUN, ideally one no policy was trained against)")


def _heldout_prompts(ws: Workspace, cfg: EvalPolicyConfig, policies: list[_Policy], rms: list[Scorer],
                     check: InputCheck, progress: ProgressFn) -> _Prompts:
    """The held-out prompts the policies agree on, drawn stratified by density quintile."""
    from katcli.evaluation.prompts import draw_prompts
    from katcli.pipeline.heldout import read_heldout

    notes = check.notes
    agree = Agreement([(p.ref.label, p.meta) for p in policies], check, noun="prompts")
    by_spec = lambda recorded: "the policies were trained with different held-out splits (" + ", ".join(  # noqa: E731
        f"{label}: --seed {int(s)} --val-ratio {v}" for (s, v), label in {
            (float(sp.seed), float(sp.val_ratio)): lb for lb, sp in recorded}.items()
    ) + "), so they share no held-out prompts"
    spec = agree.split(by_spec)
    if spec is not None:
        (split_seed, val_ratio), split_from = (int(spec[0]), float(spec[1])), "policy metas"
    else:
        split_seed, val_ratio, split_from = cfg.seed, DEFAULT_VAL_RATIO, "--seed and the default --val-ratio"
        notes.append(
            f"no policy records its training split: held-out prompts from --seed {cfg.seed}, --val-ratio "
            f"{DEFAULT_VAL_RATIO} (kat's default)"
        )
    agree.same_pairs()
    held = read_heldout(ws, split_seed, val_ratio, progress=progress)
    agree.same_fingerprint(held)
    for r in rms:
        if r.meta.is_as_is:
            notes.append(f"--rm {r.name} is a Hugging Face model as it is: kat cannot tell whether it was trained on "
                         "these prompts")
        elif r.meta.split is None or r.meta.split.spec != (split_seed, val_ratio):
            sp = r.meta.split
            notes.append(
                f"--rm {r.name} was trained with another split (--seed {sp.seed if sp else None} --val-ratio "
                f"{sp.val_ratio if sp else None}): some evaluation prompts may be among its training prompts"
            )
    first = held.first_per_prompt()
    weights = fresh_density_weights(ws, check.judge, list(first), notes)
    draw = draw_prompts(list(first), cfg.prompts, seed=cfg.seed, weights=weights)
    if not draw.stratified:
        notes.append("prompts drawn uniformly (seeded), not stratified by density quintile")
    elif len(draw.ids) < cfg.prompts:
        notes.append(f"only {len(draw.ids)} held-out prompts exist: all of them are used")
    elif min(draw.available) * 5 < cfg.prompts:
        notes.append(f"some quintiles hold fewer than {cfg.prompts // 5} held-out prompts: the others make up the rest")
    return _Prompts(held, split_from, first, draw)


def _generate_score_embed(
    ws: Workspace, cfg: EvalPolicyConfig, gen_cfg: Any, policies: list[_Policy], rms: list[Scorer],
    prompts: _Prompts, dev: Any, embedder: Embedder | None, timings: dict[str, float], progress: ProgressFn,
) -> tuple[list[Any], list[dict[str, Any]], dict[str, Any]]:
    """Every policy's replies, their rewards under every --rm, and their embeddings."""
    import torch

    threads_before = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        outputs, policies_json = _generate(cfg, gen_cfg, policies, prompts, dev, timings, progress)
        t0 = time.perf_counter()
        for s in rms:
            _score(ws, s, outputs, prompts, dev, progress)
        timings["score_s"] += time.perf_counter() - t0
        embed_info = _embed(outputs, cfg, dev, embedder, timings, progress)
    finally:
        torch.set_num_threads(threads_before)
    return outputs, policies_json, embed_info


def _generate(cfg: EvalPolicyConfig, gen_cfg: Any, policies: list[_Policy], prompts: _Prompts, dev: Any,
              timings: dict[str, float], progress: ProgressFn) -> tuple[list[Any], list[dict[str, Any]]]:
    from katcli.evaluation.generate import generate_replies
    from katcli.evaluation.measures import PolicyOutputs
    from katcli.evaluation.policy import load_policy

    outputs: list[Any] = []
    policies_json: list[dict[str, Any]] = []
    for p in policies:
        loaded = load_policy(p.ref.directory, p.meta, p.step, device=dev, trust_remote_code=cfg.trust_remote_code)
        t0 = time.perf_counter()
        replies, counts = generate_replies(
            loaded.model, loaded.tokenizer, prompts.messages, prompts.draw.ids, gen_cfg, name=p.ref.label,
            progress=progress,
        )
        seconds = time.perf_counter() - t0
        timings["generate_s"] += seconds
        del loaded
        outputs.append(PolicyOutputs(p.ref.label, replies))
        policies_json.append(
            {
                "name": p.ref.label, "kind": p.ref.kind, "path": str(p.ref.directory), "step": p.step,
                "meta_kind": p.meta.kind, "generations": f"{P.EVAL_POLICY_DIR}/{p.ref.run}/{GENERATIONS}",
                "tokens_generated": counts["tokens"], "prompts_trimmed": counts["prompts_trimmed"],
                "tokens_per_s": round(counts["tokens"] / seconds, 2) if seconds > 0 else None,
            }
        )
    return outputs, policies_json


def _score(ws: Workspace, s: Scorer, outputs: list[Any], prompts: _Prompts, dev: Any, progress: ProgressFn) -> None:
    from katcli.evaluation.scoring import score_replies
    from katcli.train.rm_scoring import RewardScorer

    loaded = load_scorer(ws, s, device=dev)
    scorer = RewardScorer.from_meta(loaded.model, loaded.tokenizer, s.meta, batch_size=32)
    for out in outputs:
        out.rewards[s.name] = score_replies(
            scorer, prompts.messages, [[r.text for r in rs] for rs in out.replies], progress=progress,
            task=f"scoring {out.name} with {s.name}",
        )


def _embed(outputs: list[Any], cfg: EvalPolicyConfig, dev: Any, embedder: Embedder | None,
           timings: dict[str, float], progress: ProgressFn) -> dict[str, Any]:
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
    return embed_info


def _document(
    cfg: EvalPolicyConfig, policies: list[_Policy], baseline: int, rms: list[Scorer], prompts: _Prompts,
    outputs: list[Any], policies_json: list[dict[str, Any]], embed_info: dict[str, Any], timings: dict[str, float],
    notes: list[str],
) -> EvalPolicyResult:
    from katcli.evaluation.measures import compare_policies, group_sizes, measure_list

    draw, sources, rm_names = prompts.draw, prompts.sources, [r.name for r in rms]
    t0 = time.perf_counter()
    results = compare_policies(
        outputs, baseline, sources=sources, quintiles=draw.quintile, rm_names=rm_names, seed=cfg.seed
    )
    timings["metrics_s"] = time.perf_counter() - t0
    held = prompts.held
    return EvalPolicyResult(
        heldout={"seed": held.seed, "val_ratio": held.val_ratio, "from": prompts.split_from,
                 "prompts": len(prompts.first), "fingerprint": held.fingerprint},
        prompts={
            "n": len(draw.ids), "requested": cfg.prompts, "stratified": draw.stratified,
            "per_quintile": draw.per_quintile() or None, "quintile_weight_ranges": draw.quintile_ranges,
            "ids": list(draw.ids),
        },
        sampling={"samples": cfg.samples, "max_new_tokens": cfg.max_new_tokens, "temperature": cfg.temperature,
                  "top_p": cfg.top_p, "seed": cfg.seed},
        baseline=policies[baseline].ref.label,
        policies=policies_json,
        reward_models=[{"name": r.name, "path": str(r.directory), "step": r.step,
                        **({"hf": r.meta.hf} if r.meta.is_as_is else {})} for r in rms],
        embedding_model=embed_info,
        groups=dict(group_sizes(sources, draw.quintile)),
        measures=[{"key": m.key, "family": m.family, "label": m.label, "higher": m.higher, "per_prompt": m.per_prompt}
                  for m in measure_list(rm_names)],
        results=results,
        bootstrap={"resamples": 1000, "set_resamples": 200, "seed": cfg.seed, "unit": "prompt"},
        timings={k: round(v, 3) for k, v in timings.items()},
        notes=notes,
    )


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
    from katcli.evaluation.policy import read_policy
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
            files = [read_policy(ref.directory)[2]]
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
