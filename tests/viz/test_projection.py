"""3-D projections: PCA is exact, deterministic and sign-stable; UMAP is optional and says so."""

from __future__ import annotations

import importlib.machinery
import sys
import types

import numpy as np
import pytest

from katcli.errors import KatError
from katcli.viz.projection import fit_pca, pca_3d, project, require_umap, umap_3d, umap_available


def _data(n: int = 400, d: int = 24, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scales = np.linspace(3.0, 0.1, d)
    x = rng.normal(size=(n, d)) * scales @ np.linalg.qr(rng.normal(size=(d, d)))[0] + 5.0
    return x.astype(np.float32)


def test_pca_matches_a_direct_svd_of_the_centred_data():
    x = _data()
    proj = pca_3d(x)
    xc = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    ref = xc @ vt[:3].T
    # Same axes up to sign; kat's signs follow its convention.
    for k in range(3):
        sign = np.sign(np.dot(proj.coords[:, k], ref[:, k]))
        np.testing.assert_allclose(proj.coords[:, k], sign * ref[:, k], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(proj.explained_variance_ratio, (s[:3] ** 2) / (s**2).sum(), rtol=1e-8)
    assert proj.method == "pca" and proj.fitted_on == 400


def test_pca_is_deterministic_and_independent_of_chunking():
    x = _data(n=1000)
    a = pca_3d(x, chunk_rows=64).coords
    b = pca_3d(x.copy(), chunk_rows=64).coords
    c = pca_3d(x, chunk_rows=100000).coords
    assert a.tobytes() == b.tobytes()
    np.testing.assert_allclose(a, c, rtol=1e-9, atol=1e-9)


def test_sign_convention_largest_loading_is_positive():
    x = _data(seed=3)
    model = fit_pca(x)
    for row in model.components:
        assert row[np.argmax(np.abs(row))] > 0
    # Negating the data negates the coordinates instead of leaving a mirrored picture to chance.
    np.testing.assert_allclose(pca_3d(-x).coords, -pca_3d(x).coords, rtol=1e-6, atol=1e-6)


def test_pca_finds_a_planted_direction():
    rng = np.random.default_rng(5)
    x = rng.normal(scale=0.01, size=(300, 8))
    x[:, 5] += rng.normal(scale=10.0, size=300)
    model = fit_pca(x)
    assert abs(model.components[0, 5]) > 0.999
    assert model.explained_variance_ratio[0] > 0.99


def test_fitted_on_all_rows_projected_for_some():
    x = _data(n=200)
    rows = np.array([3, 50, 199])
    some = pca_3d(x, rows).coords
    np.testing.assert_allclose(some, pca_3d(x).coords[rows], rtol=1e-12, atol=1e-12)


def test_memory_mapped_input(tmp_path):
    x = _data(n=300)
    np.save(tmp_path / "e.npy", x)
    mm = np.load(tmp_path / "e.npy", mmap_mode="r")
    from_disk = pca_3d(mm, np.arange(10), chunk_rows=32).coords
    assert from_disk.tobytes() == pca_3d(x, np.arange(10), chunk_rows=32).coords.tobytes()


def test_fewer_than_three_dimensions_and_a_single_row():
    x = np.random.default_rng(0).normal(size=(20, 2))
    proj = pca_3d(x)
    assert proj.coords.shape == (20, 3)
    assert np.all(proj.coords[:, 2] == 0)
    assert proj.explained_variance_ratio[2] == 0.0
    one = pca_3d(np.ones((1, 5)))
    assert one.coords.tolist() == [[0.0, 0.0, 0.0]]
    assert one.explained_variance_ratio == [0.0, 0.0, 0.0]


def test_pca_progress_is_cumulative():
    calls = []
    fit_pca(_data(n=100), chunk_rows=30, progress=lambda task, done, total=None: calls.append((task, done, total)))
    assert calls[-1] == ("pca", 200, 200)
    assert [c[1] for c in calls] == sorted(c[1] for c in calls)


@pytest.mark.skipif(umap_available(), reason="umap-learn is installed here")
def test_umap_without_umap_learn_says_how_to_get_it():
    with pytest.raises(KatError) as err:
        require_umap()
    assert err.value.message == "--method umap needs the optional umap-learn package, which is not installed"
    assert "pip install 'katcli[umap]'" in err.value.hint
    with pytest.raises(KatError):
        project(_data(n=10), np.arange(10), method="umap", seed=0)


@pytest.fixture
def fake_umap(monkeypatch):
    """A stand-in `umap` module recording how kat calls it (umap-learn itself is optional)."""
    calls = {}

    class UMAP:
        def __init__(self, **kwargs):
            calls["kwargs"] = kwargs

        def fit_transform(self, x):
            calls["rows"] = x.shape[0]
            return np.asarray(x, dtype=np.float64)[:, :3] + 1.0

    module = types.ModuleType("umap")
    module.UMAP = UMAP
    module.__spec__ = importlib.machinery.ModuleSpec("umap", None)
    monkeypatch.setitem(sys.modules, "umap", module)
    return calls


def test_umap_is_seeded_cosine_3d_and_fitted_on_the_shown_rows(fake_umap):
    x = _data(n=50)
    rows = np.arange(0, 50, 2)
    proj = project(x, rows, method="umap", seed=9)
    assert fake_umap["kwargs"] == {"n_components": 3, "n_neighbors": 15, "metric": "cosine", "random_state": 9}
    assert fake_umap["rows"] == 25
    assert proj.method == "umap" and proj.explained_variance_ratio is None and proj.fitted_on == 25
    np.testing.assert_allclose(proj.coords.mean(axis=0), 0.0, atol=1e-9)


def test_umap_needs_a_handful_of_points(fake_umap):
    with pytest.raises(KatError, match="needs at least 4 prompts"):
        umap_3d(_data(n=3), seed=0)
    umap_3d(_data(n=5), seed=0)
    assert fake_umap["kwargs"]["n_neighbors"] == 4
