"""Reading training inputs: located errors for bad lines, pairs/prefixes consistency, weights by prefix id."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rmkit import pairs_bytes, planted_pairs, prefixes_of

from katcli.errors import KatError
from katcli.train.inputs import check_consistency, read_density_weights, read_pairs, read_prefix_counts


def test_pairs_and_prefix_counts_round_trip(tmp_path):
    pairs = planted_pairs(5)
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(pairs_bytes(pairs))
    rows = read_pairs(path)
    assert [r.id for r in rows] == [p["id"] for p in pairs]
    assert rows[0].messages[0]["content"] == pairs[0]["prefix"]["messages"][0]["content"]
    prefixes = tmp_path / "prefixes.jsonl"
    prefixes.write_text("".join(json.dumps(r) + "\n" for r in prefixes_of(pairs)))
    counts = read_prefix_counts(prefixes)
    assert set(counts.values()) == {2}
    check_consistency(rows, counts, prefixes_file=str(prefixes))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "invalid JSON: Expecting property name enclosed in double quotes at column 2"),
        ('{"id": "x"}', "pair has no prefix, chosen, rejected, src, prefix_id field"),
        ('{"id": "x", "prefix": {"messages": []}, "chosen": "a", "rejected": "b", "src": "s", "prefix_id": "p"}',
         "pair prefix has no messages"),
        ('{"id": 3, "prefix": {"messages": [{"role": "user", "content": "q"}]}, "chosen": "a", "rejected": "b", '
         '"src": "s", "prefix_id": "p"}', "pair field id must be a string"),
    ],
)
def test_bad_pair_lines_are_located(tmp_path, line, message):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(pairs_bytes(planted_pairs(1)) + line.encode() + b"\n")
    with pytest.raises(KatError) as err:
        read_pairs(path)
    assert (err.value.message, err.value.file, err.value.line) == (message, str(path), 3)


def test_inconsistent_prefixes_are_named(tmp_path):
    pairs = planted_pairs(3)
    rows = [r for r in read_pairs(_write(tmp_path, pairs))]
    counts = {p["prefix_id"]: 2 for p in pairs}
    counts[pairs[0]["prefix_id"]] = 5
    with pytest.raises(KatError) as err:
        check_consistency(rows, counts, prefixes_file="prefixes.jsonl")
    assert err.value.message == (
        f"1 prefixes have a different n_pairs than the pairs file (e.g. {pairs[0]['prefix_id']}: 5 recorded, 2 pairs)"
    )
    del counts[pairs[0]["prefix_id"]]
    with pytest.raises(KatError) as err:
        check_consistency(rows, counts, prefixes_file="prefixes.jsonl")
    assert err.value.message.startswith("1 of 3 prefix ids in the pairs are not in the prefixes file")
    assert err.value.hint == "re-run `kat prefixes` so it matches the current pairs"


def test_density_weights_by_prefix_id(tmp_path):
    np.save(tmp_path / "w.npy", np.array([0.25, 0.75], dtype=np.float32))
    (tmp_path / "ids.json").write_text('["a", "b"]')
    assert read_density_weights(tmp_path / "w.npy", tmp_path / "ids.json") == {"a": 0.25, "b": 0.75}
    (tmp_path / "ids.json").write_text('["a"]')
    with pytest.raises(KatError) as err:
        read_density_weights(tmp_path / "w.npy", tmp_path / "ids.json")
    assert err.value.message == "density weights have shape [2] but ids.json lists 1 prefixes"


def _write(tmp_path, pairs):
    path = tmp_path / "p.jsonl"
    path.write_bytes(pairs_bytes(pairs))
    return path
