"""`--budget` / `--mix` parsing and the allocation arithmetic."""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from katcli.data import budget as B
from katcli.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "value"),
    [("200000", 200_000), ("200k", 200_000), ("200K", 200_000), ("1.5M", 1_500_000), ("1.5m", 1_500_000),
     ("2_000", 2_000), (" 7 ", 7), ("0.25k", 250), ("1", 1)],
)
def test_parse_budget(text, value):
    assert B.parse_budget(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lots", "--budget must be a number of pairs like 200000, 200k or 1.5M, got 'lots'"),
        ("1.2345k", "--budget must be a whole number of pairs, got '1.2345k' (1234.5)"),
        ("0", "--budget must be at least 1, got '0'"),
        ("-5", "--budget must be a number of pairs like 200000, 200k or 1.5M, got '-5'"),
        ("5G", "--budget must be a number of pairs like 200000, 200k or 1.5M, got '5G'"),
    ],
)
def test_parse_budget_errors_name_the_flag(text, message):
    with pytest.raises(ConfigError) as err:
        B.parse_budget(text)
    assert err.value.message == message


def test_parse_mix():
    assert B.parse_mix("hh=2, uf=1.5,se=0", ("hh", "uf", "se")) == {"hh": F(2), "uf": F(3, 2), "se": F(0)}
    for bad, msg in [
        ("xx=1", "--mix names an unknown source 'xx' (known: hh, uf, se)"),
        ("hh", "--mix entries look like hh=1, got 'hh'"),
        ("hh=a", "--mix weight for 'hh' must be a number, got 'a'"),
        ("hh=-1", "--mix weight for 'hh' must be at least 0, got '-1'"),
        ("hh=1,hh=2", "--mix gives 'hh' twice"),
        ("", "--mix is empty; give weights like hh=1,uf=1,se=1"),
    ]:
        with pytest.raises(ConfigError) as err:
            B.parse_mix(bad, ("hh", "uf", "se"))
        assert err.value.message == msg


def test_allocate_splits_by_weight_exactly():
    assert B.allocate(100, {"a": F(1), "b": F(1), "c": F(1)}, {"a": None, "b": None, "c": None}) == {
        "a": 34, "b": 33, "c": 33}
    assert B.allocate(10, {"a": F(2), "b": F(1)}, {"a": None, "b": None}) == {"a": 7, "b": 3}


def test_allocate_passes_what_a_short_source_cannot_take_to_the_others():
    got = B.allocate(300, {"a": F(1), "b": F(1), "c": F(1)}, {"a": 10, "b": None, "c": 1000})
    assert got == {"a": 10, "b": 145, "c": 145}
    got = B.allocate(300, {"a": F(1), "b": F(2), "c": F(1)}, {"a": 10, "b": 50, "c": 1000})
    assert got == {"a": 10, "b": 50, "c": 240}
    # Everything is short: each gives all it has.
    assert B.allocate(1000, {"a": F(1), "b": F(1)}, {"a": 3, "b": 4}) == {"a": 3, "b": 4}
    # Weight 0 takes nothing, not even leftovers.
    assert B.allocate(10, {"a": F(0), "b": F(1)}, {"a": 100, "b": 4}) == {"a": 0, "b": 4}


def test_proportional_respects_sizes_and_total():
    assert B.proportional(10, [100, 100]) == [5, 5]
    assert B.proportional(10, [1, 100, 100]) == [0, 5, 5]
    assert B.proportional(1000, [3, 4]) == [3, 4]
    shares = B.proportional(7, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    assert sum(shares) == 7 and max(shares) == 1


def test_pick_is_seeded_deterministic_and_monotone():
    rows = list(range(0, 1000, 3))
    a = B.pick(0, "g", rows, 50)
    assert a == B.pick(0, "g", rows, 50) and a == sorted(a) and len(set(a)) == 50
    assert set(a) <= set(B.pick(0, "g", rows, 80))  # a larger quota keeps the smaller one's rows
    assert B.pick(1, "g", rows, 50) != a
    assert B.pick(0, "g", rows, 5000) == rows
    assert B.equal_share(10, 3) == 4 and B.equal_share(0, 3) == 0
