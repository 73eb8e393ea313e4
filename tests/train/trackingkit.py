"""Test kit for `--report-to`: which extras are installed, and W&B's offline run file read with W&B's own protobuf.

A W&B offline run (`run-ID.wandb`) is a LevelDB-style log of `wandb_internal_pb2.Record` messages after a 7-byte
header: 32 KiB blocks of chunks, each `crc32 (4) | length (2) | type (1) | data` (1 full, 2 first, 3 middle,
4 last). wandb ships the message schema but, since 0.2x, no Python reader of the file; this is that reader.
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import pytest

from katcli.train.tracking import MODULES


def installed(name: str) -> bool:
    return importlib.util.find_spec(MODULES[name]) is not None


def require(name: str) -> None:
    if not installed(name):
        pytest.skip(f"the {name} extra is not installed (pip install -c constraints.txt -e '.[{name}]')")


_BLOCK = 32768
_HEADER = 7


def wandb_records(path: Path) -> list:
    """Every record of a W&B offline run file, as `wandb.proto.wandb_internal_pb2.Record` messages."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending, raw = _HEADER, b"", []
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + _HEADER])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk = data[pos + _HEADER:pos + _HEADER + length]
        pos += _HEADER + length
        if kind == 1:
            raw.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            raw.append(pending + chunk)
    records = []
    for blob in raw:
        rec = pb.Record()
        rec.ParseFromString(blob)
        records.append(rec)
    return records


def wandb_history(records: list) -> dict[int, dict[str, str]]:
    """step → {key: value_json} of a run's history records."""
    out: dict[int, dict[str, str]] = {}
    for rec in records:
        if rec.WhichOneof("record_type") != "history":
            continue
        items = {"/".join(i.nested_key) if i.nested_key else i.key: i.value_json for i in rec.history.item}
        out.setdefault(int(rec.history.step.num), {}).update(items)
    return out
