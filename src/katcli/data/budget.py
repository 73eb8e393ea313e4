"""How many pairs to take, and from where: `--budget`/`--mix` parsing and the allocation arithmetic.

- `parse_budget("1.5M") == 1_500_000`; `parse_mix("hh=2,uf=1")`;
- `allocate`: split a budget across sources by weight; a source that cannot fill its share passes the
  rest to the others, in proportion to their weights (weighted water-filling);
- `proportional`: split a quota across groups (subsets × splits) in proportion to their sizes;
- `pick`: which rows of a group are taken — seeded, deterministic, and monotone (a bigger quota keeps
  every row a smaller one took).

All integer arithmetic is exact (weights are `Fraction`s; remainders go to the largest fractional parts,
ties to the earlier name), so the same flags always give the same counts. Pure functions; no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from fractions import Fraction

from katcli.errors import ConfigError

_BUDGET = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKmM]?)\s*$")
_SCALE = {"": 1, "k": 1_000, "m": 1_000_000}
MAX_BUDGET = 1_000_000_000


def parse_budget(text: str) -> int:
    """`200000`, `200k`, `1.5M` → pairs; a positive whole number or `ConfigError` naming `--budget`."""
    raw = str(text).replace("_", "").replace(",", "")
    m = _BUDGET.match(raw)
    if not m:
        raise ConfigError(
            f"--budget must be a number of pairs like 200000, 200k or 1.5M, got {text!r}"
        )
    value = Fraction(m.group(1)) * _SCALE[m.group(2).lower()]
    if value.denominator != 1:
        raise ConfigError(f"--budget must be a whole number of pairs, got {text!r} ({float(value):g})")
    if value < 1:
        raise ConfigError(f"--budget must be at least 1, got {text!r}")
    if value > MAX_BUDGET:
        raise ConfigError(f"--budget must be at most 1000M, got {text!r}")
    return int(value)


def parse_mix(text: str, known: Sequence[str]) -> dict[str, Fraction]:
    """`"hh=1,uf=2"` → {"hh": 1, "uf": 2}; names must be in `known`, weights finite and ≥ 0."""
    weights: dict[str, Fraction] = {}
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise ConfigError(f"--mix entries look like hh=1, got {item!r}")
        if name not in known:
            raise ConfigError(f"--mix names an unknown source {name!r} (known: {', '.join(known)})")
        if name in weights:
            raise ConfigError(f"--mix gives {name!r} twice")
        try:
            w = Fraction(value.strip())
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"--mix weight for {name!r} must be a number, got {value.strip()!r}") from None
        if w < 0:
            raise ConfigError(f"--mix weight for {name!r} must be at least 0, got {value.strip()!r}")
        weights[name] = w
    if not weights:
        raise ConfigError("--mix is empty; give weights like hh=1,uf=1,se=1")
    return weights


def _largest_remainder(total: int, weights: Sequence[Fraction]) -> list[int]:
    """Integer shares of `total` proportional to `weights` (sum == total when any weight > 0)."""
    wsum = sum(weights, Fraction(0))
    if total <= 0 or wsum == 0:
        return [0] * len(weights)
    exact = [total * w / wsum for w in weights]
    shares = [int(x) for x in exact]  # floor: all values are non-negative
    left = total - sum(shares)
    by_fraction = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in by_fraction[:left]:
        shares[i] += 1
    return shares


def allocate(
    budget: int, weights: Mapping[str, Fraction], capacity: Mapping[str, int | None]
) -> dict[str, int]:
    """Split `budget` across `weights`' keys; `capacity[name]` caps a source (None = unlimited).

    A source that cannot take its share keeps what it has and the rest is shared again among the
    others by weight, until the budget is placed or every source with weight > 0 is full.
    """
    names = list(weights)
    take = {n: 0 for n in names}
    open_ = [n for n in names if weights[n] > 0]
    left = budget
    while left > 0 and open_:
        shares = _largest_remainder(left, [weights[n] for n in open_])
        full = []
        for name, share in zip(open_, shares):
            cap = capacity.get(name)
            room = share if cap is None else min(share, cap - take[name])
            take[name] += room
            left -= room
            if cap is not None and take[name] >= cap:
                full.append(name)
        if not full:
            break  # every open source took its whole share
        open_ = [n for n in open_ if n not in full]
    return take


def proportional(total: int, sizes: Sequence[int]) -> list[int]:
    """Split `total` across groups in proportion to `sizes`, never above a group's size."""
    want = min(total, sum(sizes))
    shares = _largest_remainder(want, [Fraction(s) for s in sizes])
    # Rounding can push a tiny group one above its size; move the excess to groups with room.
    excess = 0
    for i, s in enumerate(sizes):
        if shares[i] > s:
            excess += shares[i] - s
            shares[i] = s
    for i, s in enumerate(sizes):
        if excess == 0:
            break
        room = min(s - shares[i], excess)
        shares[i] += room
        excess -= room
    return shares


def equal_share(left: int, parts_left: int) -> int:
    """The share of one of `parts_left` equal parts of `left`, rounding up (sequential water-filling)."""
    return -(-left // parts_left) if parts_left > 0 else 0


def rank_key(seed: int, group: str, index: int) -> bytes:
    """A row's seeded sort key within its group: the first `q` rows by this key are the ones taken."""
    return hashlib.blake2b(f"{seed}\x1f{group}\x1f{index}".encode(), digest_size=8).digest()


def pick(seed: int, group: str, candidates: Sequence[int], quota: int) -> list[int]:
    """`quota` of `candidates` (row indices) chosen by seed, returned in ascending row order."""
    if quota >= len(candidates):
        return list(candidates)
    if quota <= 0:
        return []
    ranked = sorted(candidates, key=lambda i: rank_key(seed, group, i))
    return sorted(ranked[:quota])
