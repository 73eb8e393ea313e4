"""Chunked, resumable encoding: an interrupted run resumes and ends byte-identical to an uninterrupted one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from katcli.density.chunked import STATE_FILE, encode_resumable, length_order
from katcli.errors import KatError


class BatchSensitiveEncoder:
    """Deterministic, but a text's vector depends on its chunk-mates (as padding does in a real model)."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        longest = max(len(t) for t in texts)
        out = np.empty((len(texts), 8), dtype=np.float32)
        for i, t in enumerate(texts):
            rng = np.random.default_rng([len(t), sum(map(ord, t)), longest])
            out[i] = rng.normal(size=8)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class Stop(Exception):
    pass


TEXTS = [f"prompt {i} " + "x" * (i * 7 % 23) for i in range(50)]


def stop_after(chunks: int):
    seen = []

    def progress(task, done, total):
        seen.append(done)
        if len(seen) == chunks:
            raise Stop

    return progress


def test_length_order_is_longest_first_and_stable():
    assert list(length_order(["a", "ccc", "bb", "ddd", "e"])) == [1, 3, 2, 0, 4]


def test_interrupted_run_resumes_to_identical_bytes(tmp_path):
    reference, resumed = encode_resumable(BatchSensitiveEncoder(), TEXTS, key="k", scratch=None, chunk_size=8)
    assert resumed == 0

    scratch = tmp_path / "partial"
    enc = BatchSensitiveEncoder()
    with pytest.raises(Stop):
        encode_resumable(enc, TEXTS, key="k", scratch=scratch, chunk_size=8, progress=stop_after(3))
    assert enc.calls == [8, 8, 8]
    assert sorted(p.name for p in scratch.glob("chunk_*.npy")) == [f"chunk_00000{i}.npy" for i in range(3)]

    enc2 = BatchSensitiveEncoder()
    calls = []
    out, resumed = encode_resumable(
        enc2, TEXTS, key="k", scratch=scratch, chunk_size=8, progress=lambda t, d, n: calls.append((t, d, n))
    )
    assert resumed == 24 and enc2.calls == [8, 8, 8, 2]  # only the remaining 26 texts are encoded
    assert calls[-1] == ("encode", 50, 50) and len(calls) == 7
    assert out.tobytes() == reference.tobytes()


def test_chunking_changes_bytes_which_is_why_the_key_holds_the_chunk_size(tmp_path):
    a, _ = encode_resumable(BatchSensitiveEncoder(), TEXTS, key="k", scratch=None, chunk_size=8)
    b, _ = encode_resumable(BatchSensitiveEncoder(), TEXTS, key="k", scratch=None, chunk_size=16)
    assert a.tobytes() != b.tobytes()
    scratch = tmp_path / "partial"
    with pytest.raises(Stop):
        encode_resumable(BatchSensitiveEncoder(), TEXTS, key="k", scratch=scratch, chunk_size=8, progress=stop_after(2))
    enc = BatchSensitiveEncoder()
    out, resumed = encode_resumable(enc, TEXTS, key="k", scratch=scratch, chunk_size=16)
    assert resumed == 0 and out.tobytes() == b.tobytes()
    assert json.loads((scratch / STATE_FILE).read_text())["chunk_size"] == 16


def test_a_different_key_discards_old_chunks(tmp_path):
    scratch = tmp_path / "partial"
    with pytest.raises(Stop):
        encode_resumable(
            BatchSensitiveEncoder(), TEXTS, key="model-a", scratch=scratch, chunk_size=8, progress=stop_after(2)
        )
    enc = BatchSensitiveEncoder()
    _, resumed = encode_resumable(enc, TEXTS, key="model-b", scratch=scratch, chunk_size=8)
    assert resumed == 0 and sum(enc.calls) == 50


def test_a_corrupt_chunk_is_re_encoded(tmp_path):
    scratch = tmp_path / "partial"
    reference, _ = encode_resumable(BatchSensitiveEncoder(), TEXTS, key="k", scratch=None, chunk_size=8)
    with pytest.raises(Stop):
        encode_resumable(BatchSensitiveEncoder(), TEXTS, key="k", scratch=scratch, chunk_size=8, progress=stop_after(3))
    (scratch / "chunk_000001.npy").write_bytes(b"truncated")
    np.save(scratch / "chunk_000002.npy", np.zeros((3, 8), dtype=np.float32))  # wrong row count
    enc = BatchSensitiveEncoder()
    out, resumed = encode_resumable(enc, TEXTS, key="k", scratch=scratch, chunk_size=8)
    assert resumed == 8 and out.tobytes() == reference.tobytes()


def test_a_broken_encoder_is_reported():
    with pytest.raises(KatError, match="the encoder produced NaN or infinite values"):
        nan_encoder = lambda t: np.full((len(t), 4), np.nan, dtype=np.float32)  # noqa: E731
        encode_resumable(nan_encoder, TEXTS, key="k", scratch=None, chunk_size=8)
    with pytest.raises(KatError, match=r"the encoder returned shape \[7, 4\] for 8 texts"):
        encode_resumable(lambda t: np.ones((7, 4), dtype=np.float32), TEXTS, key="k", scratch=None, chunk_size=8)
