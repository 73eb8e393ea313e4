"""The one held-out set: built from the pairs and a split, and the agreement checks both evaluations make."""

from __future__ import annotations

import pytest

from katcli.errors import KatError
from katcli.model.run_meta import RunMeta
from katcli.pipeline.heldout import Agreement, InputCheck, build_heldout, covering
from katcli.train.inputs import Pair
from katcli.train.split import split_pairs


def _pairs(n: int) -> list[Pair]:
    return [Pair(f"id{i}", ({"role": "user", "content": f"q{i // 2}"},), "a", "b", "s", f"p{i // 2}")
            for i in range(n)]


class _Judge:
    def __init__(self, sha: str = "cur") -> None:
        self.sha = sha

    def check_input(self, rel):
        return None

    def current_sha(self, rel):
        return self.sha


def _meta(seed: int, ratio: float, *, pairs_sha: str = "cur", fingerprint: str | None = None) -> RunMeta:
    return RunMeta.from_json({"kind": "kat-reward-model", "inputs": {"data/pairs_all.jsonl": pairs_sha},
                              "heldout": {"seed": seed, "val_ratio": ratio, "fingerprint": fingerprint}})


def test_the_heldout_set_is_the_split_of_the_pairs():
    pairs = _pairs(200)
    held = build_heldout(pairs, 3, 0.25)
    split = split_pairs([p.prefix_id for p in pairs], seed=3, val_ratio=0.25)
    assert list(held.split.heldout) == list(split.heldout) and held.held == [pairs[i] for i in split.heldout]
    assert held.fingerprint == split.fingerprint([p.id for p in pairs])
    first = held.first_per_prompt()
    assert list(first) == list(dict.fromkeys(p.prefix_id for p in held.held))  # split order, one pair each


def test_models_must_agree_on_the_split():
    notes: list[str] = []
    agree = Agreement([("a", _meta(0, 0.2)), ("b", _meta(1, 0.2)), ("hf", RunMeta(kind="hf-model"))],
                      InputCheck(_Judge(), False, notes))
    with pytest.raises(KatError, match="a,b") as err:
        agree.split(lambda recorded: ",".join(label for label, _ in recorded))
    assert err.value.hint == "train them with the same --seed and --val-ratio"
    assert Agreement([("a", _meta(0, 0.2))], InputCheck(_Judge(), False, notes)).split(str) == (0, 0.2)
    assert Agreement([("hf", RunMeta(kind="hf-model"))], InputCheck(_Judge(), False, notes)).split(str) is None


def test_other_pairs_are_refused_unless_forced_then_noted():
    models = [("old", _meta(0, 0.2, pairs_sha="old"))]
    with pytest.raises(KatError, match="old was trained on another version of data/pairs_all.jsonl"):
        Agreement(models, InputCheck(_Judge(), False, [])).same_pairs()
    notes: list[str] = []
    assert Agreement(models, InputCheck(_Judge(), True, notes), noun="prompts").same_pairs() == "cur"
    assert notes == ["forced: old was trained on another version of data/pairs_all.jsonl; its held-out prompts are "
                     "not these"]


def test_a_different_fingerprint_is_refused():
    held = build_heldout(_pairs(100), 0, 0.2)
    ok = Agreement([("a", _meta(0, 0.2, fingerprint=held.fingerprint)), ("b", _meta(0, 0.2))],
                   InputCheck(_Judge(), False, []))
    ok.same_fingerprint(held)  # the same set, or none recorded
    bad = Agreement([("a", _meta(0, 0.2, fingerprint="0" * 64))], InputCheck(_Judge(), False, []))
    with pytest.raises(KatError, match="a's held-out set differs"):
        bad.same_fingerprint(held)


def test_weights_must_cover_every_heldout_prompt():
    notes: list[str] = []
    assert covering({"p1": 1.0, "p2": 2.0}, ["p1", "p2"], notes) == {"p1": 1.0, "p2": 2.0} and notes == []
    assert covering({"p1": 1.0}, ["p1", "p2"], notes) is None
    assert notes == ["the density weights do not cover every held-out prompt: no density quintiles"]
    assert covering(None, ["p1"], notes) is None and len(notes) == 1
