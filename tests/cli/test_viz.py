"""`kat viz`: flags, messages and exit codes, manifest records, upstream checks and --open."""

from __future__ import annotations

import json

import numpy as np
import pytest

from katcli.viz.projection import umap_available
from katcli.workspace import Manifest
from katcli.workspace import paths as P
import vizkit

JSON_OUT = "viz/embeddings_3d.json"
HTML_OUT = "viz/embeddings_3d.html"


def _err(result) -> str:
    # Errors raised while the progress display is up can follow the blank line it leaves on stderr.
    return result.stderr.lstrip("\n")




@pytest.fixture
def upstream(ws_dir):
    return vizkit.record_upstream(ws_dir, n=80, d=12)


def test_writes_the_page_and_the_json_and_records_the_run(kat, ws_dir, upstream):
    result = kat("viz")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Shown: 80 of 80 prompts"
    assert lines[1].startswith("Projection: PCA, ") and lines[1].endswith("% of the variance")
    doc = json.loads((ws_dir / JSON_OUT).read_text(encoding="utf-8"))
    assert lines[2] == "Sources: " + ", ".join(f"{s} {c}" for s, c in sorted(doc["sources"].items()))
    assert lines[3] == f"Wrote {ws_dir.resolve() / JSON_OUT}"
    assert lines[4].startswith(f"Wrote {ws_dir.resolve() / HTML_OUT} (")
    assert len(lines) == 5

    assert [p["id"] for p in doc["points"]] == upstream.ids
    assert doc["n_total"] == doc["n_shown"] == 80
    html = (ws_dir / HTML_OUT).read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and '<script type="application/json" id="kat-data">' in html

    run = Manifest.load(ws_dir / P.MANIFEST).runs["viz"]
    assert run.command == "kat -w {} viz".format(ws_dir)
    assert run.params == {"method": "pca", "max_points": 5000, "color": "weight", "seed": 0}
    assert sorted(i.path for i in run.inputs) == sorted(
        [P.EMBEDDINGS, P.DENSITY_WEIGHTS, P.EMBED_IDS, P.EMBED_METADATA, P.PREFIXES]
    )
    assert {o.path: o.rows for o in run.outputs} == {JSON_OUT: 80, HTML_OUT: 80}
    assert run.stats["n_shown"] == 80 and run.stats["method"] == "pca" and run.forced is False

    status = kat("status", "--json")
    viz_row = next(s for s in json.loads(status.stdout)["stages"] if s["stage"] == "viz")
    assert viz_row["state"] == "ok"


def test_sampling_flags_and_byte_identical_reruns(kat, ws_dir, upstream):
    assert kat("viz", "--max-points", "30", "--seed", "3", "--color", "source").exit_code == 0
    first = [(ws_dir / p).read_bytes() for p in (JSON_OUT, HTML_OUT)]
    result = kat("viz", "--max-points", "30", "--seed", "3", "--color", "source")
    assert result.stdout.splitlines()[0] == "Shown: 30 of 80 prompts; the 6 rarest always kept, seed 3"
    assert [(ws_dir / p).read_bytes() for p in (JSON_OUT, HTML_OUT)] == first
    doc = json.loads(first[0])
    rarest = {upstream.ids[i] for i in np.argsort(-upstream.weights.astype(np.float64), kind="stable")[:6]}
    assert rarest <= {p["id"] for p in doc["points"]}
    assert '{"color":"source"}' in first[1].decode("utf-8")


def test_quiet_prints_nothing(kat, upstream):
    result = kat("--quiet", "viz")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


def test_missing_upstream_names_the_command(kat):
    result = kat("viz")
    assert result.exit_code == 1
    assert _err(result) == "Error: data/embeddings_offline/embeddings.npy is missing\nHint: run `kat embed` first\n"


def test_modified_upstream_stops_unless_forced(kat, ws_dir, upstream):
    meta = ws_dir / P.EMBED_METADATA
    meta.write_text(meta.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    result = kat("viz")
    assert result.exit_code == 1
    assert _err(result).startswith(f"Error: {P.EMBED_METADATA} was modified after `kat test-embed` wrote it\n")
    forced = kat("viz", "--force")
    assert forced.exit_code == 0, forced.stderr
    assert forced.stdout.startswith(f"Forced: {P.EMBED_METADATA} was modified after `kat test-embed` wrote it\n")
    assert Manifest.load(ws_dir / P.MANIFEST).runs["viz"].forced is True


def test_ids_that_disagree_with_the_prefixes_are_named_with_file_and_line(kat, ws_dir, upstream):
    ids = list(upstream.ids)
    ids[0], ids[1] = ids[1], ids[0]
    (ws_dir / P.EMBED_IDS).write_text(json.dumps(ids), encoding="utf-8")
    result = kat("viz", "--force")
    assert result.exit_code == 1
    assert _err(result) == (
        "Error: ids.json does not match prefixes_all.jsonl: row 0 is 'p000001' in ids.json but 'p000000' here "
        f"({ws_dir.resolve() / P.PREFIXES}:1)\n"
        "Hint: re-run `kat embed` to rebuild the embeddings, weights and ids together\n"
    )
    assert not (ws_dir / JSON_OUT).exists() and not (ws_dir / HTML_OUT).exists()


def test_bad_flag_values(kat, upstream):
    # range errors (with their hint): tests/cli/test_flag_errors.py
    result = kat("viz", "--seed", "-2")
    assert (result.exit_code, result.stderr.splitlines()[0]) == (1, "Error: --seed must be zero or positive")
    result = kat("viz", "--method", "tsne")
    assert result.exit_code == 2 and "'tsne' is not one of 'pca', 'umap'" in result.stderr


@pytest.mark.skipif(umap_available(), reason="umap-learn is installed here")
def test_umap_without_umap_learn(kat, ws_dir, upstream):
    result = kat("viz", "--method", "umap")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: --method umap needs the optional umap-learn package, which is not installed\n"
        "Hint: install it with `pip install 'katcli[umap]'` (or `pip install umap-learn`), "
        "or use the default `--method pca`\n"
    )
    assert "viz" not in Manifest.load(ws_dir / P.MANIFEST).runs


def test_open_hands_the_page_to_the_browser(kat, ws_dir, upstream, monkeypatch):
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    assert kat("viz", "--open").exit_code == 0
    assert opened == [(ws_dir.resolve() / HTML_OUT).as_uri()]


def test_open_without_a_browser_says_where_the_page_is(kat, ws_dir, upstream, monkeypatch):
    monkeypatch.setattr("webbrowser.open", lambda url: False)
    result = kat("viz", "--open")
    assert result.exit_code == 0
    assert result.stderr.endswith(f"Could not open a browser; open {ws_dir.resolve() / HTML_OUT} yourself.\n")
