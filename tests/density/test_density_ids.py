"""Downstream consistency: ids.json vs prefixes_all.jsonl, and the row counts of the arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest
from densitykit import write_prefixes

from katcli.density.ids import check_embedding_rows, check_ids_match, read_ids
from katcli.errors import KatError


@pytest.fixture
def files(tmp_path):
    prefixes = tmp_path / "prefixes_all.jsonl"
    ids = write_prefixes(prefixes, ["a?", "b?", "c?", "d?"], ids=["id0", "id1", "id2", "id3"])
    ids_path = tmp_path / "ids.json"
    ids_path.write_text(json.dumps(ids))
    return prefixes, ids_path


def test_matching_files_pass(files):
    prefixes, ids_path = files
    assert check_ids_match(ids_path, prefixes) == 4


def test_first_differing_row_is_named(files):
    prefixes, ids_path = files
    ids_path.write_text(json.dumps(["id0", "id1", "idX", "id3"]))
    with pytest.raises(KatError) as err:
        check_ids_match(ids_path, prefixes)
    assert err.value.message == (
        "ids.json does not match the prefixes: row 2 is 'idX' in ids.json but 'id2' in prefixes_all.jsonl"
    )
    assert (err.value.file, err.value.line) == (str(prefixes), 3)
    assert "re-run `kat embed`" in err.value.hint


def test_reordered_prefixes_are_caught(files):
    prefixes, ids_path = files
    lines = prefixes.read_text().splitlines(keepends=True)
    prefixes.write_text("".join([lines[1], lines[0], *lines[2:]]))
    with pytest.raises(KatError, match="row 0 is 'id0' in ids.json but 'id1' in prefixes_all.jsonl"):
        check_ids_match(ids_path, prefixes)


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (["id0", "id1", "id2"], "ids.json lists 3 prefixes but prefixes_all.jsonl has 4"),
        (["id0", "id1", "id2", "id3", "id4"], "ids.json lists 5 prefixes but prefixes_all.jsonl has 4"),
    ],
)
def test_count_mismatch_is_named(files, ids, message):
    prefixes, ids_path = files
    ids_path.write_text(json.dumps(ids))
    with pytest.raises(KatError) as err:
        check_ids_match(ids_path, prefixes)
    assert err.value.message == message


def test_bad_ids_files(tmp_path):
    with pytest.raises(KatError, match="embedding ids not found"):
        read_ids(tmp_path / "ids.json")
    (tmp_path / "ids.json").write_text('{"a": 1}')
    with pytest.raises(KatError, match="ids.json must be a JSON list of prefix id strings"):
        read_ids(tmp_path / "ids.json")


def test_array_rows_must_match_the_ids(files, tmp_path):
    _, ids_path = files
    emb, w = tmp_path / "embeddings.npy", tmp_path / "density_weights.npy"
    np.save(emb, np.ones((4, 3), dtype=np.float32))
    np.save(w, np.full(4, 0.25, dtype=np.float32))
    assert check_embedding_rows(ids_path, emb, w) == (4, 3)
    np.save(w, np.full(5, 0.2, dtype=np.float32))
    with pytest.raises(KatError, match=r"density weights have shape \[5\] but ids.json lists 4 prefixes"):
        check_embedding_rows(ids_path, emb, w)
