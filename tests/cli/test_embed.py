"""`kat embed`: outputs, metadata, manifest, summary, messages and exit codes, determinism, consistency checks."""

from __future__ import annotations

import json

import densitykit as kit
import numpy as np
import pytest
from clikit import err, kat_embed, read_outputs, record_prefixes  # noqa: F401 - kat_embed is a fixture
from katfixtures import record_stage

from katcli.workspace import Manifest, Workspace
from katcli.workspace import paths as P


@pytest.fixture
def planted(ws_dir, tmp_path):
    """520 prefixes and a planted-cluster embedding file for them (500 near-duplicates, then 20 unrelated)."""
    prompts = kit.cluster_prompts(500) + kit.RARE_PROMPTS
    ids = record_prefixes(ws_dir, prompts)
    npy = tmp_path / "planted.npy"
    np.save(npy, kit.planted(500, 20, dim=48, seed=0).astype(np.float64) * 3.0)  # not unit length: kat normalises
    return ids, npy


def test_embeddings_from_file_writes_weights_metadata_and_manifest(kat_embed, ws_dir, planted):
    ids, npy = planted
    result = kat_embed("--embeddings-from", npy)
    assert result.exit_code == 0, err(result)

    emb, w, got_ids, meta = read_outputs(ws_dir)
    assert got_ids == ids
    assert emb.dtype == np.float32 and emb.shape == (520, 48)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-6)
    assert w.dtype == np.float32 and w.shape == (520,)
    assert abs(float(w.astype(np.float64).sum()) - 1.0) < 1e-5
    assert w[500:].min() > w[:500].max()  # every unrelated prompt outweighs every clustered one

    assert meta["n"] == 520 and meta["dims"] == 48 and meta["text"] == "first-user"
    assert meta["model"] == {"source": "file", "path": str(npy.resolve()), "normalized": True}
    assert (meta["k"], meta["eps"], meta["power"], meta["max_ratio"]) == (20, 0.001, 1.0, None)
    assert (meta["index"], meta["index_requested"], meta["recall"], meta["hnsw"]) == ("exact", "auto", None, None)
    ws = meta["weights"]
    assert ws["max_min_ratio"] == pytest.approx(float(w.max()) / float(w.min()), rel=1e-6)
    assert ws["ess"] == pytest.approx(1 / np.sum(w.astype(np.float64) ** 2), rel=1e-5)
    assert set(ws["percentiles"]) == {"p1", "p5", "p25", "p50", "p75", "p95", "p99"}
    assert meta["density_max"] == meta["density"]["max"] <= 1.0
    assert meta["timings"] == "wall-clock timings are in manifest.json (runs.embed.stats.timings)"

    run = Manifest.load(ws_dir / P.MANIFEST).runs["embed"]
    outs = {o.path: o for o in run.outputs}
    assert set(outs) == {P.EMBEDDINGS, P.DENSITY_WEIGHTS, P.EMBED_IDS, P.EMBED_METADATA}
    assert outs[P.EMBEDDINGS].shape == [520, 48] and outs[P.DENSITY_WEIGHTS].shape == [520]
    assert outs[P.EMBED_IDS].rows == 520
    assert [i.path for i in run.inputs] == [P.PREFIXES, str(npy.resolve())]
    assert run.params["k"] == 20 and run.stats["index"] == "exact"
    assert {"read_s", "exact_s", "density_total_s", "total_s"} <= set(run.stats["timings"])

    out = result.stdout
    assert "Prompts       520 (first-user)" in out
    assert f"Embeddings    48 dims, embeddings from {npy.resolve()}" in out
    assert "Index         exact, k=20" in out
    assert f"Weight ratio  max/min {ws['max_min_ratio']:.3g}" in out
    assert f"ESS           {ws['ess']:,.1f} of 520" in out
    rare = out.split("Rarest prompts (highest weight)")[1].split("Densest prompts")[0]
    dense = out.split("Densest prompts (lowest weight)")[1]
    assert sum(p in rare for p in kit.RARE_PROMPTS) == 5 and "chocolate cake" not in rare
    assert "chocolate cake" in dense and not any(p in dense for p in kit.RARE_PROMPTS)
    assert out.rstrip().splitlines()[-1] == f"Wrote {ws_dir.resolve() / P.EMBED_DIR}"


def test_outputs_are_byte_identical_on_a_rerun(kat_embed, ws_dir, planted):
    _, npy = planted
    assert kat_embed("--embeddings-from", npy, "--index", "hnsw", "--k", "10").exit_code == 0
    outputs = (P.EMBEDDINGS, P.DENSITY_WEIGHTS, P.EMBED_IDS, P.EMBED_METADATA)
    first = {rel: (ws_dir / rel).read_bytes() for rel in outputs}
    meta1 = json.loads((ws_dir / P.EMBED_METADATA).read_text())
    assert kat_embed("--embeddings-from", npy, "--index", "hnsw", "--k", "10").exit_code == 0
    assert first == {rel: (ws_dir / rel).read_bytes() for rel in first}  # metadata included: no timings in it
    assert meta1["index"] == "hnsw" and 0.95 <= meta1["recall"] <= 1.0
    assert meta1["hnsw"]["deterministic"] is True and meta1["hnsw"]["recall_queries"] == 520
    assert (meta1["hnsw"]["shards"], meta1["hnsw"]["insertion_order"]) == (2, "k-means cells")


def test_ivf_index_is_described_in_the_summary_and_metadata(kat_embed, ws_dir, planted):
    _, npy = planted
    result = kat_embed("--embeddings-from", npy, "--index", "ivf", "--k", "10")
    assert result.exit_code == 0, err(result)
    _, w, _, meta = read_outputs(ws_dir)
    assert w[500:].min() > w[:500].max()
    ivf = meta["ivf"]
    assert (meta["index"], meta["index_requested"], meta["hnsw"]) == ("ivf", "ivf", None)
    assert ivf["cells"] == 91 and ivf["recall_queries"] == 520 and ivf["deterministic"] is True
    assert meta["recall"] == ivf["recall_by_nprobe"][str(ivf["nprobe"])] >= 0.95
    assert ivf["target_recall"] == 0.95
    line = f"Index         IVF, k=10, recall@10 {meta['recall']:.3f} (91 cells, nprobe {ivf['nprobe']})"
    assert line in result.stdout.splitlines()

    strict = kat_embed("--embeddings-from", npy, "--index", "ivf", "--k", "10", "--target-recall", "0.999")
    assert strict.exit_code == 0, err(strict)
    strict_meta = read_outputs(ws_dir)[3]
    assert strict_meta["ivf"]["target_recall"] == 0.999 and strict_meta["recall"] >= 0.999
    assert strict_meta["ivf"]["nprobe"] > ivf["nprobe"]  # it had to search wider for it


def test_auto_chooses_ivf_on_many_prompts_and_hnsw_stays_available(kat_embed, ws_dir, planted, monkeypatch):
    _, npy = planted
    monkeypatch.setattr("katcli.density.knn.AUTO_EXACT_MAX", 100)  # 520 prompts count as "many"
    auto = kat_embed("--embeddings-from", npy, "--k", "10")
    assert auto.exit_code == 0, err(auto)
    meta = read_outputs(ws_dir)[3]
    assert (meta["index"], meta["index_requested"]) == ("ivf", "auto")
    assert any(line.startswith("Index         IVF, k=10, recall@10 ") for line in auto.stdout.splitlines())
    assert "Note: --index ivf" not in auto.stdout  # the old advice for an auto that chose HNSW
    chosen = kat_embed("--embeddings-from", npy, "--k", "10", "--index", "hnsw")
    assert chosen.exit_code == 0, err(chosen)
    assert read_outputs(ws_dir)[3]["index"] == "hnsw" and "Index         HNSW, k=10" in chosen.stdout


def test_max_ratio_and_power_reach_the_weights(kat_embed, ws_dir, planted):
    _, npy = planted
    result = kat_embed("--embeddings-from", npy, "--max-ratio", "5", "--power", "2")
    assert result.exit_code == 0, err(result)
    _, w, _, meta = read_outputs(ws_dir)
    assert float(w.max() / w.min()) == pytest.approx(5.0, rel=1e-5)
    n_clipped = meta["weights"]["n_clipped"]
    assert meta["max_ratio"] == 5.0 and meta["power"] == 2.0
    assert n_clipped == int((w == w.max()).sum()) >= 10  # the clipped ones share the cap
    assert f"max/min 5, {n_clipped} clipped by --max-ratio" in result.stdout


def test_k_at_least_the_number_of_prompts_is_refused_naming_both(kat_embed, ws_dir, planted):
    # bad flags in general: tests/cli/test_flag_errors.py; this one needs the prompts counted first
    _, npy = planted
    result = kat_embed("--embeddings-from", npy, "--k", "100000")
    assert result.exit_code == 1
    assert err(result).splitlines() == [
        "Error: --k 100000 needs more than 100000 prompts, but there are 520",
        "Hint: pass --k 519 or less: a prompt's neighbours are the other prompts",
    ]
    assert not (ws_dir / P.EMBED_DIR).exists()
    assert kat_embed("--embeddings-from", npy, "--k", "519").exit_code == 0


def test_unknown_choice_is_a_usage_error(kat_embed):
    result = kat_embed("--index", "faiss")
    assert result.exit_code == 2
    assert "Invalid value for '--index'" in result.stderr


def test_missing_prefixes_names_the_command_that_makes_them(kat_embed):
    result = kat_embed()
    assert result.exit_code == 1
    lines = err(result).splitlines()
    assert lines[0].startswith("Error: ") and "data/prefixes_all.jsonl" in lines[0]
    assert "kat prefixes" in err(result)


def test_wrong_row_count_in_embeddings_from(kat_embed, ws_dir, planted, tmp_path):
    bad = tmp_path / "short.npy"
    np.save(bad, np.ones((10, 4), dtype=np.float32))
    result = kat_embed("--embeddings-from", bad)
    assert result.exit_code == 1
    lines = err(result).splitlines()
    assert lines[0] == f"Error: embeddings have 10 rows but there are 520 prefixes ({bad.resolve()})"
    assert lines[1].startswith("Hint: row i must be the embedding of line i of data/prefixes_all.jsonl")
    assert not (ws_dir / P.EMBEDDINGS).exists()
    assert "embed" not in Manifest.load(ws_dir / P.MANIFEST).runs


def test_a_file_that_is_no_npy_at_all_says_so(kat_embed, ws_dir, planted, tmp_path):
    # numpy falls back to unpickling a file without its magic, and its error spoke of "pickled (object) data"
    bad = tmp_path / "emb.npy"
    bad.write_text("0.1,0.2\n0.3,0.4\n", encoding="utf-8")  # a CSV saved under the wrong name
    result = kat_embed("--embeddings-from", bad)
    assert result.exit_code == 1
    assert err(result).splitlines() == [
        f"Error: not a .npy file: it does not start with numpy's magic bytes (\\x93NUMPY) ({bad.resolve()})",
        "Hint: save it with numpy.save(path, array) — a plain numeric [N, D] array, no pickled objects",
    ]


def test_changed_prefixes_are_detected_and_named(kat_embed, ws_dir, planted):
    from katcli.pipeline.embed import check_embeddings_current

    ids, npy = planted
    assert kat_embed("--embeddings-from", npy).exit_code == 0
    assert check_embeddings_current(Workspace(ws_dir)) == (520, 48)

    # The prefixes are rebuilt with two rows swapped: same ids, different order.
    lines = (ws_dir / P.PREFIXES).read_text(encoding="utf-8").splitlines(keepends=True)
    lines[3], lines[4] = lines[4], lines[3]
    record_stage(ws_dir, "prefixes", {P.PREFIXES: "".join(lines), P.PREFIX_ID_MAP: "x\ty\n"}, inputs=(P.PAIRS,))
    from katcli.errors import KatError

    with pytest.raises(KatError) as caught:
        check_embeddings_current(Workspace(ws_dir))
    assert caught.value.message == (
        f"ids.json does not match the prefixes: row 3 is {ids[3]!r} in ids.json but {ids[4]!r} in prefixes_all.jsonl"
    )
    assert caught.value.line == 4

    # ...and the stage itself sees that its input changed.
    from katcli.pipeline.upstream import load_judge

    judge = load_judge(Workspace(ws_dir))
    verdict = judge.verdict(Manifest.load(ws_dir / P.MANIFEST).runs["embed"])
    assert verdict.state == "stale"


def test_long_rare_prompts_never_squeeze_the_weights_out_of_an_80_column_summary(
    kat_embed, ws_dir, tmp_path, monkeypatch
):
    # Real HH prompts are long: at 80 columns the rarest table used to print `┃┃┃ prompt` with no numbers.
    monkeypatch.setenv("COLUMNS", "80")
    rare = [f"{p} " + "and then some more words about it " * 6 for p in kit.RARE_PROMPTS]
    record_prefixes(ws_dir, kit.cluster_prompts(500) + rare)
    npy = tmp_path / "planted.npy"
    np.save(npy, kit.planted(500, 20, dim=48, seed=0))
    result = kat_embed("--embeddings-from", npy)
    assert result.exit_code == 0, err(result)
    for title in ("Rarest prompts (highest weight)", "Densest prompts (lowest weight)"):
        lines = result.stdout.split(title)[1].splitlines()[1:8]
        assert lines[0].split() == ["weight", "┃", "density", "┃", "id", "┃", "prompt"]
        rows = lines[2:7]
        assert all(len(r) <= 80 for r in lines)
        assert [float(r.split("│")[0]) > 0 for r in rows] == [True] * 5
        assert all(r.split("│")[2].strip().startswith("p00") for r in rows)  # the whole prefix id
