"""A stage records the checksum of the bytes it read, never a (size, mtime) cache's memory of them."""

from __future__ import annotations

import hashlib
import os

import pytest
from katfixtures import record_stage

from katcli.errors import UpstreamError
from katcli.workspace import HashCache, Manifest
from katcli.workspace import paths as P

ORIGINAL = '{"a": 1}\n{"a": 2}\n'
EDITED = '{"a": 1}\n{"a": 7}\n'  # same size


def _lie_to_the_cache(root, rel: str, digest: str) -> None:
    """Make the cache vouch for `digest` at the file's current stat (a coarse-timestamp filesystem does this)."""
    cache = HashCache(root / ".kat" / "hash_cache.json")
    cache.remember((root / rel).resolve(), digest)
    cache.save()


def _recorded_input(root, key: str, rel: str) -> str | None:
    run = Manifest.load(root / P.MANIFEST).runs[key]
    return next(i.sha256 for i in run.inputs if i.path == rel)


def test_an_edit_the_cache_missed_stops_the_stage(ws_dir):
    record_stage(ws_dir, "pairs", {P.PAIRS: ORIGINAL})
    recorded = Manifest.load(ws_dir / P.MANIFEST).runs["pairs"].outputs[0].sha256
    (ws_dir / P.PAIRS).write_text(EDITED, encoding="utf-8")
    _lie_to_the_cache(ws_dir, P.PAIRS, recorded)
    with pytest.raises(UpstreamError) as err:
        record_stage(ws_dir, "prefixes", {P.PREFIXES: "p\n"}, inputs=(P.PAIRS,))
    assert err.value.message == "data/pairs_all.jsonl was modified after `kat test-pairs` wrote it"


def test_forced_run_records_the_bytes_it_read(ws_dir):
    record_stage(ws_dir, "pairs", {P.PAIRS: ORIGINAL})
    recorded = Manifest.load(ws_dir / P.MANIFEST).runs["pairs"].outputs[0].sha256
    (ws_dir / P.PAIRS).write_text(EDITED, encoding="utf-8")
    _lie_to_the_cache(ws_dir, P.PAIRS, recorded)
    record_stage(ws_dir, "prefixes", {P.PREFIXES: "p\n"}, inputs=(P.PAIRS,), force=True)
    assert _recorded_input(ws_dir, "prefixes", P.PAIRS) == hashlib.sha256(EDITED.encode()).hexdigest()
    # The cache learnt the fresh checksum, so status agrees with what the stage saw.
    cache = HashCache(ws_dir / ".kat" / "hash_cache.json")
    assert cache.sha256((ws_dir / P.PAIRS).resolve()) == hashlib.sha256(EDITED.encode()).hexdigest()


def test_a_restored_original_is_accepted_whatever_the_cache_says(ws_dir):
    record_stage(ws_dir, "pairs", {P.PAIRS: ORIGINAL})
    path = ws_dir / P.PAIRS
    st = path.stat()
    path.write_text(EDITED, encoding="utf-8")
    path.write_text(ORIGINAL, encoding="utf-8")  # undone, mtime restored; the cache still vouches for EDITED
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    _lie_to_the_cache(ws_dir, P.PAIRS, hashlib.sha256(EDITED.encode()).hexdigest())
    record_stage(ws_dir, "prefixes", {P.PREFIXES: "p\n"}, inputs=(P.PAIRS,))
    assert _recorded_input(ws_dir, "prefixes", P.PAIRS) == hashlib.sha256(ORIGINAL.encode()).hexdigest()


def test_each_input_is_hashed_once(ws_dir, monkeypatch):
    from katcli.pipeline import upstream
    from katcli.workspace import hashing

    record_stage(ws_dir, "pairs", {P.PAIRS: ORIGINAL})
    calls: list[str] = []
    real = hashing.sha256_file

    def counting(path):
        calls.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(upstream, "sha256_file", counting)
    monkeypatch.setattr(hashing, "sha256_file", counting)
    record_stage(ws_dir, "prefixes", {P.PREFIXES: "p\n"}, inputs=(P.PAIRS,))
    assert calls.count("pairs_all.jsonl") == 1
