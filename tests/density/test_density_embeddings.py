"""`--embeddings-from`: validation of a user's [N, D] .npy and L2 normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from katcli.density.embeddings import load_embeddings, normalise_rows
from katcli.errors import KatError


def save(tmp_path, arr, name="e.npy"):
    path = tmp_path / name
    np.save(path, arr)
    return path


def test_valid_file_is_normalised_to_float32(tmp_path):
    raw = np.array([[3.0, 4.0], [0.0, -2.0], [1.0, 1.0]], dtype=np.float64)
    emb = load_embeddings(save(tmp_path, raw), 3)
    assert emb.dtype == np.float32 and emb.shape == (3, 2)
    np.testing.assert_allclose(emb, [[0.6, 0.8], [0.0, -1.0], [2**-0.5, 2**-0.5]], rtol=1e-7)
    ints = load_embeddings(save(tmp_path, np.array([[1, 0], [0, 2]], dtype=np.int32), "i.npy"), 2)
    np.testing.assert_array_equal(ints, [[1, 0], [0, 1]])


def test_normalise_rows_is_stable_under_repetition():
    x = np.random.default_rng(0).normal(size=(100, 16)).astype(np.float32)
    once = normalise_rows(x)
    np.testing.assert_allclose(np.linalg.norm(once, axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize(
    ("arr", "n", "message"),
    [
        (np.zeros(5), 5, "embeddings must be a 2-D array [N, D], got shape [5]"),
        (np.ones((4, 3)), 5, "embeddings have 4 rows but there are 5 prefixes"),
        (np.array([[1.0, 0.0], [np.nan, 1.0]]), 2, "embeddings row 1 contains NaN or infinity"),
        (np.array([[1.0, 0.0], [1.0, np.inf]]), 2, "embeddings row 1 contains NaN or infinity"),
        (np.array([[1.0, 0.0], [0.0, 0.0]]), 2, "embeddings row 1 is all zeros (cosine similarity is undefined)"),
        (np.array([["a", "b"]]), 1, "embeddings must hold numbers, got dtype <U1"),
    ],
)
def test_bad_arrays_are_named(tmp_path, arr, n, message):
    path = save(tmp_path, arr)
    with pytest.raises(KatError) as err:
        load_embeddings(path, n)
    assert err.value.message == message
    assert err.value.file == str(path)


def test_unreadable_files(tmp_path):
    with pytest.raises(KatError, match="embeddings file not found"):
        load_embeddings(tmp_path / "missing.npy", 3)
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not an npy file at all")
    with pytest.raises(KatError, match="not a .npy file: it does not start with numpy's magic bytes"):
        load_embeddings(junk, 3)
    cut = tmp_path / "cut.npy"
    np.save(cut, np.ones((3, 4)))
    cut.write_bytes(cut.read_bytes()[:20])  # the magic, then a broken header
    with pytest.raises(KatError, match="not a readable .npy array"):
        load_embeddings(cut, 3)
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(KatError, match="not a readable .npy array"):
        load_embeddings(pickled, 1)
    archive = tmp_path / "arch.npy"
    with archive.open("wb") as fh:
        np.savez(fh, a=np.ones((2, 2)))
    with pytest.raises(KatError, match="expected one array in a .npy file"):
        load_embeddings(archive, 2)
