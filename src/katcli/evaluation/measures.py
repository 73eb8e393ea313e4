"""From replies, rewards and embeddings to the comparison table: every measure, every group, with intervals.

Measure families (`measure_list(rm_names)` gives each measure's key, family and short label):

- quality, per reward model `R`: `reward/R` (a prompt's mean reward over its samples) and `win/R` (its win rate
  against the baseline policy, `katcli.evaluation.scoring.win_rate`);
- within a prompt, across its samples: `distinct-1`, `distinct-2`, `self-bleu`, `emb-div`;
- across prompts, one reply per prompt (sample 0): `distinct-1`, `distinct-2`, `emb-div`, `vendi`;
- style: `words` (mean reply length in words), `em-dash` (em dashes per 1,000 words), `truncated` (share of
  replies cut by --max-new-tokens).

Groups: `overall`, `src:<source>` and, with density weights, `Q1` (commonest) … `Q5` (rarest). Per-prompt measures
are averaged over a group's prompts with a percentile bootstrap interval; across-prompt measures are recomputed on
each resample (bias-corrected, `katcli.evaluation.bootstrap`). The Δ of a policy is against the baseline on the
same prompts and resamples (`compare_policies`). This module knows measures and groups; not models, files or
rendering.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from katcli.evaluation import bootstrap as B
from katcli.evaluation import diversity as D
from katcli.evaluation.generate import Reply
from katcli.evaluation.scoring import win_rate

#: The schema of `kat eval policy --json` and of the `evaluation.json` it keeps beside each policy's replies.
SCHEMA = "kat.eval.policy/1"


@dataclass(frozen=True)
class Measure:
    key: str
    family: str  # quality/<rm> | within | across | style
    label: str  # short column label
    higher: str  # what a higher value means, for the README and JSON readers
    per_prompt: bool = True


FAMILY_TITLES = {
    "within": "Diversity within a prompt (its samples)",
    "across": "Diversity across prompts (one reply each)",
    "style": "Style",
}

DIVERSITY = (
    Measure("within/distinct-1", "within", "dist-1", "more varied"),
    Measure("within/distinct-2", "within", "dist-2", "more varied"),
    Measure("within/self-bleu", "within", "s-BLEU", "more repetitive"),
    Measure("within/emb-div", "within", "emb-div", "more varied"),
    Measure("across/distinct-1", "across", "dist-1", "more varied", per_prompt=False),
    Measure("across/distinct-2", "across", "dist-2", "more varied", per_prompt=False),
    Measure("across/emb-div", "across", "emb-div", "more varied", per_prompt=False),
    Measure("across/vendi", "across", "Vendi", "more distinct replies", per_prompt=False),
    Measure("style/words", "style", "words", "longer"),
    Measure("style/em-dash", "style", "—/1k w", "more em dashes"),
    Measure("style/truncated", "style", "trunc", "more replies cut off"),
)


def quality_measures(rm_names: Sequence[str]) -> list[Measure]:
    out: list[Measure] = []
    for r in rm_names:
        out.append(Measure(f"reward/{r}", f"quality/{r}", "reward", "preferred by the reward model"))
        out.append(Measure(f"win/{r}", f"quality/{r}", "win", "beats the baseline more often"))
    return out


@dataclass
class PolicyOutputs:
    """What one policy produced on the drawn prompts, in prompt order."""

    name: str
    replies: list[list[Reply]]
    rewards: dict[str, list[list[float]]] = field(default_factory=dict)  # reward model -> per prompt, per sample
    embeddings: np.ndarray | None = None  # (prompts, samples, dim), unit rows


def per_prompt_values(
    out: PolicyOutputs, base: PolicyOutputs, rm_names: Sequence[str]
) -> dict[str, list[float | None]]:
    """Every per-prompt measure of one policy, one value (or None) per prompt."""
    texts = [[r.text for r in rs] for rs in out.replies]
    values: dict[str, list[float | None]] = {
        "within/distinct-1": [D.distinct_n(t, 1) for t in texts],
        "within/distinct-2": [D.distinct_n(t, 2) for t in texts],
        "within/self-bleu": [D.self_bleu(t) for t in texts],
        "style/words": [float(np.mean([len(D.words(x)) for x in t])) for t in texts],
        "style/em-dash": [D.em_dash_rate(t) for t in texts],
        "style/truncated": [float(np.mean([r.truncated for r in rs])) for rs in out.replies],
    }
    if out.embeddings is not None:
        values["within/emb-div"] = [D.embedding_diversity(e) for e in out.embeddings]
    for r in rm_names:
        rewards, base_rewards = out.rewards[r], base.rewards[r]
        values[f"reward/{r}"] = [float(np.mean(x)) if len(x) else None for x in rewards]
        values[f"win/{r}"] = [win_rate(a, b) for a, b in zip(rewards, base_rewards)]
    return values


def set_stats(out: PolicyOutputs) -> dict[str, Callable[[np.ndarray], float | None]]:
    """Across-prompt measures on sample 0 of each prompt, as functions of per-prompt counts (a resample repeats
    prompts; a group is the counts 1 on its members)."""
    first = [rs[0].text for rs in out.replies]
    stats: dict[str, Callable[[np.ndarray], float | None]] = {}
    for n in (1, 2):
        ids, owner, size = D.gram_index(first, n)
        stats[f"across/distinct-{n}"] = lambda c, ids=ids, owner=owner, size=size: D.distinct_from_counts(
            ids, owner, size, c
        )
    if out.embeddings is not None:
        e0 = out.embeddings[:, 0, :].astype(np.float64)
        e0 = e0 / np.linalg.norm(e0, axis=1, keepdims=True)
        sim = e0 @ e0.T
        stats["across/emb-div"] = lambda c: D.embedding_diversity_from_similarity(sim, c)
        stats["across/vendi"] = lambda c: D.vendi_from_similarity(sim, c)
    return stats


def groups_of(sources: Sequence[str], quintiles: Sequence[int | None]) -> dict[str, np.ndarray]:
    """Group name → prompt indices: overall, each source, each density quintile (when known)."""
    n = len(sources)
    groups = {"overall": np.arange(n)}
    for s in sorted(set(sources)):
        groups[f"src:{s}"] = np.array([i for i in range(n) if sources[i] == s], dtype=np.int64)
    if n and all(q is not None for q in quintiles):
        for k in range(5):
            groups[f"Q{k + 1}"] = np.array([i for i in range(n) if quintiles[i] == k], dtype=np.int64)
    return groups


def compare_policies(
    outputs: Sequence[PolicyOutputs],
    baseline: int,
    *,
    sources: Sequence[str],
    quintiles: Sequence[int | None],
    rm_names: Sequence[str],
    seed: int,
    resamples: int = B.DEFAULT_RESAMPLES,
    set_resamples: int = B.SET_RESAMPLES,
) -> dict[str, dict[str, dict[str, Any]]]:
    """`{policy: {measure key: {group: {value, ci95, n, delta}}}}`; `delta` is None for the baseline itself."""
    base = outputs[baseline]
    groups = groups_of(sources, quintiles)
    values = [per_prompt_values(o, base, rm_names) for o in outputs]
    stats = [set_stats(o) for o in outputs]
    results: dict[str, dict[str, dict[str, Any]]] = {o.name: {} for o in outputs}
    for gname, members in groups.items():
        n = len(members)
        idx = B.resamples(n, seed, gname, b=resamples)
        set_idx = B.resamples(n, seed, gname, "set", b=set_resamples)
        for key in values[baseline]:
            base_v = [values[baseline][key][int(i)] for i in members]
            for p, o in enumerate(outputs):
                v = [values[p][key][int(i)] for i in members]
                est = B.mean_interval(v, idx) if n else B.NONE
                delta = None
                if p != baseline:
                    delta = (B.paired_mean_interval(v, base_v, idx) if n else B.NONE).to_json()
                results[o.name].setdefault(key, {})[gname] = {**est.to_json(), "delta": delta}
        full = np.zeros(len(sources), dtype=np.int64)
        full[members] = 1
        counts = B.resample_counts(members, set_idx, len(sources))
        base_draws = {k: B.set_draws(f, full, counts) for k, f in stats[baseline].items()}
        for p, o in enumerate(outputs):
            for key, f in stats[p].items():
                draws = base_draws[key] if p == baseline else B.set_draws(f, full, counts)
                est = B.set_estimate(draws[0], draws[1], n)
                delta = None if p == baseline else B.paired_set_interval(draws, base_draws[key], n).to_json()
                results[o.name].setdefault(key, {})[gname] = {**est.to_json(), "delta": delta}
    return results


def measure_list(rm_names: Sequence[str], *, with_embeddings: bool = True) -> list[Measure]:
    ms = quality_measures(rm_names) + list(DIVERSITY)
    return [m for m in ms if with_embeddings or m.label not in ("emb-div", "Vendi")]


def reply_rows(
    out: PolicyOutputs, prompt_ids: Sequence[str], quintiles: Sequence[int | None], sources: Sequence[str]
) -> list[dict[str, Any]]:
    """The generations file's rows for one policy (one per reply)."""
    rows = []
    for i, rs in enumerate(out.replies):
        for k, r in enumerate(rs):
            rows.append(
                {
                    "prompt_id": prompt_ids[i],
                    "src": sources[i],
                    "quintile": None if quintiles[i] is None else int(quintiles[i]) + 1,
                    "sample": k,
                    "text": r.text,
                    "tokens": r.tokens,
                    "truncated": r.truncated,
                    "rewards": {name: round(v[i][k], 6) for name, v in sorted(out.rewards.items())},
                }
            )
    return rows


def group_sizes(sources: Sequence[str], quintiles: Sequence[int | None]) -> Mapping[str, int]:
    return {g: len(m) for g, m in groups_of(sources, quintiles).items()}
