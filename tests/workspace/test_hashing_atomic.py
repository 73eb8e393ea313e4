"""Hash cache keyed on (size, mtime_ns); atomic writes leave the old file or the new one, never half."""

from __future__ import annotations

import hashlib
import os

import pytest

from katcli.workspace import HashCache, atomic_write, sha256_file


def test_sha256_file_matches_hashlib(tmp_path):
    p = tmp_path / "f.bin"
    data = os.urandom(3 * (1 << 20) + 17)  # spans several read chunks
    p.write_bytes(data)
    assert sha256_file(p) == hashlib.sha256(data).hexdigest()


def test_cache_is_reused_until_size_or_mtime_changes(tmp_path, monkeypatch):
    p = tmp_path / "f.txt"
    p.write_text("abc")
    cache = HashCache(tmp_path / "cache.json")
    first = cache.sha256(p)
    cache.save()
    calls = []
    import katcli.workspace.hashing as hashing

    real = hashing.sha256_file
    monkeypatch.setattr(hashing, "sha256_file", lambda path: calls.append(path) or real(path))
    reloaded = HashCache(tmp_path / "cache.json")
    assert reloaded.sha256(p) == first and calls == []
    p.write_text("abcd")
    assert reloaded.sha256(p) == hashlib.sha256(b"abcd").hexdigest() and len(calls) == 1
    assert HashCache(tmp_path / "cache.json", verify=True).sha256(p) and len(calls) == 2


def test_corrupt_cache_is_ignored(tmp_path):
    (tmp_path / "cache.json").write_text("[[[")
    p = tmp_path / "f.txt"
    p.write_text("x")
    assert HashCache(tmp_path / "cache.json").sha256(p) == hashlib.sha256(b"x").hexdigest()


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(ValueError):
        with atomic_write(target, "w") as fh:
            fh.write("new but incomplete")
            raise ValueError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    with atomic_write(target, "w") as fh:
        fh.write("new")
    assert target.read_text() == "new"
