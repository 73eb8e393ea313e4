"""The shipped sample mirror: exactly what its generator writes, in each dataset's real schema, small."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq

from katcli.data.sources import sample_root
from katcli.sample import generate

DATA_SUFFIXES = (".jsonl.gz", ".parquet")


def data_files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.name.endswith(DATA_SUFFIXES))


def test_committed_files_are_what_the_generator_writes(tmp_path):
    generate.build(tmp_path)
    shipped = sample_root()
    assert data_files(tmp_path) == data_files(shipped)
    for rel in data_files(shipped):
        if rel.name.endswith(".jsonl.gz"):
            assert (tmp_path / rel).read_bytes() == (shipped / rel).read_bytes(), rel
        else:  # parquet bytes embed the writer's version; the table itself must be identical
            assert pq.read_table(tmp_path / rel).equals(pq.read_table(shipped / rel)), rel


def test_layout_and_size():
    root = sample_root()
    files = {str(p) for p in data_files(root)}
    for subset in ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled"):
        for split in ("train", "test"):
            assert f"Anthropic/hh-rlhf/{subset}/{split}.jsonl.gz" in files
    for split in ("train_prefs", "test_prefs"):
        assert f"HuggingFaceH4/ultrafeedback_binarized/data/{split}-00000-of-00001.parquet" in files
    sites = {f.split("/")[3] for f in files if "stack-exchange-preferences" in f}
    assert len(sites) >= 3
    assert sum((root / f).stat().st_size for f in files) < 2 * 1024 * 1024


def test_real_schemas():
    root = sample_root()
    row = json.loads(gzip.open(root / "Anthropic/hh-rlhf/helpful-base/train.jsonl.gz", "rt").readline())
    assert set(row) == {"chosen", "rejected"} and row["chosen"].startswith("\n\nHuman: ")
    msg = pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))
    uf = pq.read_schema(root / "HuggingFaceH4/ultrafeedback_binarized/data/train_prefs-00000-of-00001.parquet")
    assert [(f.name, f.type) for f in uf] == [
        ("prompt", pa.string()), ("prompt_id", pa.string()), ("chosen", msg), ("rejected", msg),
        ("messages", msg), ("score_chosen", pa.float64()), ("score_rejected", pa.float64()),
    ]
    se = pq.read_schema(next((root / "HuggingFaceH4/stack-exchange-preferences/data").rglob("*.parquet")))
    assert se.names == ["qid", "question", "answers", "date", "metadata"]
    assert [f.name for f in se.field("answers").type.value_type] == [
        "answer_id", "author", "author_id", "author_profile", "pm_score", "selected", "text"]


def test_scaled_mirror_for_benchmarks(tmp_path):
    counts = generate.build(tmp_path, scale=3)
    base = generate.build(tmp_path / "base")
    assert counts["hh-rlhf"] > 2 * base["hh-rlhf"]
    assert counts["stack-exchange-preferences"] > 2 * base["stack-exchange-preferences"]
