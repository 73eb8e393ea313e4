"""`kat embed --name NAME`: another weighting of the same embeddings beside the default one — no re-encode, the
default's bytes untouched, a weight set the manifest records and judges."""

from __future__ import annotations

import hashlib
import json

import densitykit as kit
import numpy as np
import pytest
from clikit import err, kat_embed, record_prefixes  # noqa: F401 - kat_embed is a fixture

from katcli.workspace import Manifest, Workspace
from katcli.workspace import paths as P

SHARP = "data/embeddings_offline/weights/sharp"


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def embedded(ws_dir, tmp_path, kat_embed):
    prompts = kit.cluster_prompts(200) + kit.RARE_PROMPTS
    record_prefixes(ws_dir, prompts)
    npy = tmp_path / "planted.npy"
    np.save(npy, kit.planted(200, 20, dim=32, seed=0))
    assert kat_embed("--embeddings-from", npy, "--k", "10").exit_code == 0
    return {rel: sha(ws_dir / rel) for rel in (P.EMBEDDINGS, P.DENSITY_WEIGHTS, P.EMBED_IDS, P.EMBED_METADATA)}


def test_a_named_set_beside_the_default_reuses_the_embeddings(kat_embed, ws_dir, embedded, monkeypatch):
    import katcli.pipeline.embed as E

    def no_encoding(*a, **k):
        raise AssertionError("a named weight set must not encode")

    monkeypatch.setattr(E, "resolve_and_load", no_encoding)
    result = kat_embed("--name", "sharp", "--power", "2", "--k", "10")
    assert result.exit_code == 0, err(result)
    assert f"Wrote {ws_dir / SHARP}" in result.stdout
    # the default set's files are byte for byte what they were; one embeddings file in the workspace
    assert {rel: sha(ws_dir / rel) for rel in embedded} == embedded
    assert sorted(p.name for p in ws_dir.rglob("*.npy")) == ["density_weights.npy", "density_weights.npy",
                                                              "embeddings.npy"]
    base = np.load(ws_dir / P.DENSITY_WEIGHTS).astype(np.float64)
    sharp = np.load(ws_dir / SHARP / "density_weights.npy").astype(np.float64)
    # same k and eps, power 2: each weight is the default's squared, renormalised
    np.testing.assert_allclose(sharp, base**2 / (base**2).sum(), rtol=2e-5)
    assert sharp.max() / sharp.min() == pytest.approx((base.max() / base.min()) ** 2, rel=1e-4)
    meta = json.loads((ws_dir / SHARP / "weights_metadata.json").read_text())
    assert (meta["format"], meta["name"], meta["power"], meta["k"], meta["embeddings"]) == (
        "kat-weights/1", "sharp", 2.0, 10, P.EMBEDDINGS)
    run = Manifest.load(ws_dir / P.MANIFEST).runs["weights/sharp"]
    assert {i.path for i in run.inputs} >= {P.EMBEDDINGS, P.EMBED_IDS, P.EMBED_METADATA}
    assert run.params["power"] == 2.0 and run.params["name"] == "sharp"


def test_named_sets_are_reproducible_and_judged_against_the_embeddings(kat_embed, ws_dir, embedded, tmp_path):
    assert kat_embed("--name", "sharp", "--power", "2").exit_code == 0
    first = sha(ws_dir / SHARP / "density_weights.npy"), sha(ws_dir / SHARP / "weights_metadata.json")
    assert kat_embed("--name", "sharp", "--power", "2").exit_code == 0
    assert (sha(ws_dir / SHARP / "density_weights.npy"), sha(ws_dir / SHARP / "weights_metadata.json")) == first
    # new embeddings: the named set made from the old ones is stale
    other = tmp_path / "other.npy"
    np.save(other, kit.planted(200, 20, dim=32, seed=1))
    assert kat_embed("--embeddings-from", other, "--k", "10").exit_code == 0
    from katcli.pipeline.upstream import load_judge

    judge = load_judge(Workspace(ws_dir))
    verdict = judge.verdict(judge.manifest.runs["weights/sharp"])
    assert verdict.state == "stale"
    assert sorted(verdict.reasons) == [f"its input {P.EMBEDDINGS} changed after this run",
                                       f"its input {P.EMBED_METADATA} changed after this run"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "x", "--text", "conversation"],
         "Error: --text conversation: a named weight set reuses the embeddings there (embeddings from "),
        (["--name", "default"], "Error: --name default is the set `kat embed` writes without --name"),
        (["--name", "a/b"], "Error: --name must be letters, digits, '.', '_' or '-' (no slashes), starting "
                            "alphanumeric"),
    ],
)
def test_refusals(kat_embed, ws_dir, embedded, args, message):
    result = kat_embed(*args)
    assert result.exit_code == 1
    assert err(result).startswith(message)
    assert not (ws_dir / P.WEIGHT_SETS_DIR).exists()


def test_a_named_set_needs_the_embeddings_first(kat_embed, ws_dir):
    record_prefixes(ws_dir, kit.cluster_prompts(30))
    result = kat_embed("--name", "sharp")
    assert result.exit_code == 1
    assert "kat embed" in err(result)
