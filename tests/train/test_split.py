"""The held-out split: by prompt, seeded, never overlapping, independent of anything but (seed, prefix id)."""

from __future__ import annotations

import pytest

from katcli.errors import ConfigError, KatError
from katcli.train.split import is_heldout, split_pairs

PIDS = [f"{i:016x}" for i in range(400) for _ in range(i % 3 + 1)]  # prompts with 1–3 pairs each


def test_no_prompt_is_on_both_sides():
    s = split_pairs(PIDS, seed=0, val_ratio=0.1)
    train = {PIDS[i] for i in s.train}
    held = {PIDS[i] for i in s.heldout}
    assert train and held and not train & held
    assert sorted(s.train + s.heldout) == list(range(len(PIDS)))


def test_ratio_is_roughly_respected_and_seed_matters():
    s0 = split_pairs(PIDS, seed=0, val_ratio=0.1)
    held_prompts = {PIDS[i] for i in s0.heldout}
    assert 20 <= len(held_prompts) <= 60
    s1 = split_pairs(PIDS, seed=1, val_ratio=0.1)
    assert s0.heldout != s1.heldout


def test_same_seed_same_split_whatever_the_order_or_subset():
    s = split_pairs(PIDS, seed=3, val_ratio=0.2)
    held = {PIDS[i] for i in s.heldout}
    assert held == {p for p in set(PIDS) if is_heldout(p, 3, 0.2)}
    reordered = list(reversed(PIDS))
    r = split_pairs(reordered, seed=3, val_ratio=0.2)
    assert {reordered[i] for i in r.heldout} == held
    ids = [f"pair{i}" for i in range(len(PIDS))]
    assert s.fingerprint(ids) == split_pairs(PIDS, seed=3, val_ratio=0.2).fingerprint(ids)


def test_empty_side_is_an_error_naming_the_flag():
    with pytest.raises(KatError) as err:
        split_pairs(["a" * 16], seed=0, val_ratio=0.05)
    assert err.value.message == "the held-out set is empty: 0 of 1 prompts fall in --val-ratio 0.05"
    assert err.value.hint == "use more pairs, or change --val-ratio / --seed"


def test_bad_ratio_names_the_flag():
    with pytest.raises(ConfigError) as err:
        split_pairs(PIDS, seed=0, val_ratio=1.5)
    assert err.value.message == "--val-ratio must be between 0 and 1 (exclusive), got 1.5"
