"""The viz document end to end (no workspace): point count and ids match the embeddings; output repeats."""

from __future__ import annotations

import json

import numpy as np
import pytest
from vizkit import embed_files, make_embed_files  # noqa: F401  (embed_files is a fixture)

from katcli.errors import ConfigError, KatError
from katcli.viz.build import VizOptions, build_viz
from katcli.viz.projection import pca_3d, umap_available


def test_all_points_when_under_the_limit_ids_in_row_order(embed_files):
    built = build_viz(embed_files.paths, VizOptions(max_points=1000))
    doc = json.loads(built.json_text)
    assert doc["format"] == "kat-viz/1"
    assert (doc["n_total"], doc["n_shown"], doc["n_rare_kept"]) == (120, 120, 0)
    assert [p["id"] for p in doc["points"]] == embed_files.ids
    assert set(doc["points"][0]) == {"id", "x", "y", "z", "weight", "density", "src", "text"}
    assert [p["text"] for p in doc["points"]] == embed_files.texts
    np.testing.assert_allclose([p["weight"] for p in doc["points"]], embed_files.weights, rtol=1e-5)
    assert sum(doc["sources"].values()) == 120


def test_coordinates_are_the_pca_of_the_embeddings(embed_files):
    doc = build_viz(embed_files.paths, VizOptions()).document
    ref = pca_3d(embed_files.embeddings).coords
    got = np.array([[p["x"], p["y"], p["z"]] for p in doc["points"]])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    evr = doc["projection"]["explained_variance_ratio"]
    assert doc["projection"]["method"] == "pca" and len(evr) == 3 and evr[0] >= evr[1] >= evr[2] > 0


def test_sampled_points_are_a_subset_with_matching_ids_and_the_rarest(tmp_path):
    files = make_embed_files(tmp_path, n=600, d=12, seed=2)
    doc = build_viz(files.paths, VizOptions(max_points=100, seed=5)).document
    assert (doc["n_total"], doc["n_shown"], doc["n_rare_kept"], doc["seed"]) == (600, 100, 20, 5)
    ids = [p["id"] for p in doc["points"]]
    rows = [files.ids.index(i) for i in ids]
    assert rows == sorted(rows) and len(set(rows)) == 100
    rarest = {files.ids[i] for i in np.argsort(-files.weights.astype(np.float64), kind="stable")[:20]}
    assert rarest <= set(ids)
    for p, row in zip(doc["points"], rows):
        assert p["text"] == files.texts[row]


def test_same_inputs_same_bytes(embed_files):
    a = build_viz(embed_files.paths, VizOptions(max_points=50, seed=1))
    b = build_viz(embed_files.paths, VizOptions(max_points=50, seed=1))
    assert a.json_text == b.json_text
    assert a.html_text == b.html_text
    c = build_viz(embed_files.paths, VizOptions(max_points=50, seed=2))
    assert c.json_text != a.json_text


def test_density_is_recorded_and_relative(embed_files):
    doc = build_viz(embed_files.paths, VizOptions()).document
    assert doc["density"]["kind"] == "relative"
    values = [p["density"] for p in doc["points"]]
    assert max(values) == 1.0 and min(values) > 0
    # Rarer (heavier) prompts are less dense.
    heavy = max(doc["points"], key=lambda p: p["weight"])
    assert heavy["density"] == min(values)


def test_without_density_parameters_density_is_null_and_cannot_colour(tmp_path):
    files = make_embed_files(tmp_path, n=30, metadata={"model": "x"})
    built = build_viz(files.paths, VizOptions())
    assert all(p["density"] is None for p in built.document["points"])
    assert built.warnings and "could not be derived" in built.warnings[0]
    with pytest.raises(KatError) as err:
        build_viz(files.paths, VizOptions(color="density"))
    assert err.value.message.startswith("--color density needs the density parameters")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (VizOptions(method="tsne"), "--method must be one of pca, umap, got 'tsne'"),
        (VizOptions(max_points=0), "--max-points must be at least 1"),
        (VizOptions(color="rainbow"), "--color must be one of weight, density, source, got 'rainbow'"),
        (VizOptions(seed=-1), "--seed must be zero or positive"),
    ],
)
def test_options_are_validated_with_the_flag_named(options, message):
    with pytest.raises(ConfigError) as err:
        options.validate()
    assert err.value.message == message


@pytest.mark.skipif(umap_available(), reason="umap-learn is installed here")
def test_umap_without_the_package_stops_before_reading_anything(tmp_path):
    files = make_embed_files(tmp_path, n=10)
    files.paths.embeddings.unlink()  # would fail differently if it were read first
    with pytest.raises(KatError, match="needs the optional umap-learn package"):
        build_viz(files.paths, VizOptions(method="umap"))
