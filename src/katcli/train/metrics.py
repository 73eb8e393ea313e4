"""Held-out accuracy with honest uncertainty: overall, per source and per density quintile.

Accuracy is the share of held-out pairs whose chosen reply gets the strictly higher reward (ties count as wrong),
each with a Wilson score 95% interval, which stays inside [0, 1] and is sensible for small groups.

Density quintiles split the held-out *prompts* into five equal-count groups by their density weight (ties broken by
prefix id, so the split is deterministic): Q1 holds the lowest weights (the most common prompts), Q5 the highest
(the rarest). A pair belongs to its prompt's quintile. Every model evaluated on one held-out set therefore uses the
same groups. This module computes numbers from arrays; it knows nothing about models, files or rendering.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

Z95 = 1.959963984540054
N_QUINTILES = 5


def wilson_interval(correct: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when there is no data."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Accuracy:
    n: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.n)

    def to_json(self) -> dict[str, Any]:
        lo, hi = self.interval
        return {
            "n": self.n,
            "correct": self.correct,
            "accuracy": round(self.accuracy, 6) if self.n else None,
            "ci95": [round(lo, 6), round(hi, 6)],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Accuracy:
        return cls(int(d["n"]), int(d["correct"]))


def accuracy_cell(acc: Mapping[str, Any] | None, ci_digits: int = 2) -> str:
    """`0.625 (0.47–0.76)`: an `Accuracy.to_json()` as tables show it, accuracy and Wilson interval; `–` if empty."""
    if acc is None or not acc["n"]:
        return "–"
    lo, hi = acc["ci95"]
    return f"{acc['accuracy']:.3f} ({lo:.{ci_digits}f}–{hi:.{ci_digits}f})"


def quintile_label(q: int, n: int = N_QUINTILES) -> str:
    """How tables name density quintile `q` (0-based): `Q1 commonest`, `Q2`, … `Q5 rarest`."""
    return f"Q{q + 1}" + (" commonest" if q == 0 else " rarest" if q == n - 1 else "")


#: How JSON names the quintiles, so that every reader sees which end is rare.
QUINTILE_KEYS = ("q1_commonest", "q2", "q3", "q4", "q5_rarest")


def quintile_edges(prefix_ids: Sequence[str], weights: Mapping[str, float]) -> list[float]:
    """The four upper edges (weights of the last prompt of Q1 … Q4) of the equal-count split of these prompts, the
    one cut that training-time evaluation, `kat eval` and the report share."""
    prompts = sorted(set(prefix_ids), key=lambda pid: (weights[pid], pid))
    groups = np.array_split(np.arange(len(prompts)), N_QUINTILES)
    return [float(weights[prompts[int(g[-1])]]) if len(g) else float("-inf") for g in groups[:-1]]


def density_quintiles(
    prefix_ids: Sequence[str], weights: Mapping[str, float], edges: Sequence[float] | None = None
) -> tuple[list[int], list[list[float]]]:
    """Per pair, its prompt's quintile (0 = lowest weight … 4 = highest); plus each quintile's [min, max] weight.

    Without `edges` the quintiles are the equal-count split of these prompts; with them (`quintile_edges` of the
    held-out set) a prompt falls in the first quintile whose upper edge its weight does not exceed, so a subset of
    prompts (GRPO's evaluation prompts) is cut where the whole held-out set was."""
    if edges is None:
        prompts = sorted(set(prefix_ids), key=lambda pid: (weights[pid], pid))
        groups = np.array_split(np.arange(len(prompts)), N_QUINTILES)
        of = {prompts[int(k)]: q for q, members in enumerate(groups) for k in members}
    else:
        of = {pid: int(np.searchsorted(np.asarray(edges), weights[pid], side="left")) for pid in set(prefix_ids)}
    ranges: list[list[float]] = []
    for q in range(N_QUINTILES):
        ws = [weights[pid] for pid, k in of.items() if k == q]
        ranges.append([float(min(ws)), float(max(ws))] if ws else [])
    return [of[pid] for pid in prefix_ids], ranges


@dataclass
class EvalReport:
    """Accuracy of one reward model on one held-out set, with the breakdowns."""

    overall: Accuracy
    by_source: dict[str, Accuracy]
    by_quintile: list[Accuracy] | None = None
    quintile_ranges: list[list[float]] | None = None
    mean_loss: float = float("nan")
    mean_margin: float = float("nan")
    ties: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # Per-pair margins in the evaluated order, for paired comparisons (`katcli.evaluation.paired`); never serialised.
    margins: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "overall": self.overall.to_json(),
            "by_source": {k: v.to_json() for k, v in sorted(self.by_source.items())},
            "by_quintile": [q.to_json() for q in self.by_quintile] if self.by_quintile is not None else None,
            "quintile_weight_ranges": self.quintile_ranges,
            "mean_loss": _round(self.mean_loss),
            "mean_margin": _round(self.mean_margin),
            "ties": self.ties,
        }
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EvalReport:
        quint = d.get("by_quintile")
        return cls(
            overall=Accuracy.from_json(d["overall"]),
            by_source={k: Accuracy.from_json(v) for k, v in d.get("by_source", {}).items()},
            by_quintile=[Accuracy.from_json(q) for q in quint] if quint is not None else None,
            quintile_ranges=d.get("quintile_weight_ranges"),
            mean_loss=float(d["mean_loss"]) if d.get("mean_loss") is not None else float("nan"),
            mean_margin=float(d["mean_margin"]) if d.get("mean_margin") is not None else float("nan"),
            ties=int(d.get("ties", 0)),
        )


def _round(x: float) -> float | None:
    return None if math.isnan(x) else round(float(x), 6)


def _acc(mask: np.ndarray, correct: np.ndarray) -> Accuracy:
    return Accuracy(int(mask.sum()), int(correct[mask].sum()))


def summarize(
    margins: np.ndarray,
    losses: np.ndarray,
    sources: Sequence[str],
    prefix_ids: Sequence[str],
    weights: Mapping[str, float] | None = None,
) -> EvalReport:
    """The report for held-out pairs given each pair's reward margin `r_c − r_r` and loss."""
    margins = np.asarray(margins, dtype=np.float64)
    correct = margins > 0
    everything = np.ones(len(margins), dtype=bool)
    src = np.asarray(sources, dtype=object)
    by_source = {s: _acc(src == s, correct) for s in sorted(set(sources))}
    by_quintile = ranges = None
    if weights is not None and all(pid in weights for pid in prefix_ids):
        quint, ranges = density_quintiles(prefix_ids, weights)
        q = np.asarray(quint)
        by_quintile = [_acc(q == k, correct) for k in range(N_QUINTILES)]
    return EvalReport(
        overall=_acc(everything, correct),
        by_source=by_source,
        by_quintile=by_quintile,
        quintile_ranges=ranges,
        mean_loss=float(np.mean(losses)) if len(losses) else float("nan"),
        mean_margin=float(np.mean(margins)) if len(margins) else float("nan"),
        ties=int((margins == 0).sum()),
        margins=margins,
    )


@dataclass
class NLL:
    """Summed reply negative log-likelihood of some held-out rows, and over how many rows and tokens."""

    rows: int
    tokens: int
    nll_sum: float

    @property
    def mean(self) -> float:
        return self.nll_sum / self.tokens if self.tokens else float("nan")

    def to_json(self) -> dict[str, Any]:
        mean = self.mean
        return {
            "n": self.rows, "tokens": self.tokens, "nll": _round(mean),
            "perplexity": _round(math.exp(mean)) if math.isfinite(mean) and mean < 700 else None,
        }


@dataclass
class GroupedReport:
    """A held-out result overall, per source and per density quintile; a group is anything with `to_json()`."""

    overall: Any
    by_source: dict[str, Any]
    by_quintile: list[Any] | None = None
    quintile_ranges: list[list[float]] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "overall": self.overall.to_json(),
            "by_source": {k: v.to_json() for k, v in sorted(self.by_source.items())},
            "by_quintile": [q.to_json() for q in self.by_quintile] if self.by_quintile is not None else None,
            "quintile_weight_ranges": self.quintile_ranges,
        }

    @classmethod
    def grouped(
        cls,
        group: Callable[[np.ndarray], Any],
        sources: Sequence[str],
        prefix_ids: Sequence[str],
        weights: Mapping[str, float] | None = None,
        edges: Sequence[float] | None = None,
    ) -> Any:
        """The report whose groups are `group(mask)` over the rows: all, each source, each density quintile (cut
        at `edges`, the held-out set's, when given)."""
        src = np.asarray(sources, dtype=object)
        by_quintile = ranges = None
        if weights is not None and all(pid in weights for pid in prefix_ids):
            quint, ranges = density_quintiles(prefix_ids, weights, edges)
            q = np.asarray(quint)
            by_quintile = [group(q == k) for k in range(N_QUINTILES)]
        return cls(
            overall=group(np.ones(len(src), dtype=bool)),
            by_source={s: group(src == s) for s in sorted(set(sources))},
            by_quintile=by_quintile,
            quintile_ranges=ranges,
        )


@dataclass
class NLLReport(GroupedReport):
    """Held-out reply NLL (mean per reply token) and perplexity, overall / per source / per density quintile."""

    headline: ClassVar[str] = "nll"


def summarize_nll(
    nll_sums: np.ndarray,
    token_counts: np.ndarray,
    sources: Sequence[str],
    prefix_ids: Sequence[str],
    weights: Mapping[str, float] | None = None,
) -> NLLReport:
    """Token-weighted mean NLL per group, given each held-out row's summed reply NLL and reply token count."""
    nll = np.asarray(nll_sums, dtype=np.float64)
    toks = np.asarray(token_counts, dtype=np.int64)

    def group(mask: np.ndarray) -> NLL:
        return NLL(int(mask.sum()), int(toks[mask].sum()), float(nll[mask].sum()))

    return NLLReport.grouped(group, sources, prefix_ids, weights)
