"""`kat prefixes` through the CLI, and the acceptance check on real HH-RLHF rows: download from a mirror
holding them, dedupe, and compare with an independent common-prefix parse."""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from datakit import HH_DIR, independent_hh, read_jsonl  # noqa: E402

from katcli.workspace import Manifest  # noqa: E402
from katcli.workspace import paths as P  # noqa: E402


def test_prefixes_after_download(kat, ws_dir):
    assert kat("-q", "pairs", "download", "--from", "sample").exit_code == 0
    result = kat("prefixes")
    assert result.exit_code == 0, result.output
    assert "Prefixes: 366 unique from 413 pairs (ratio 0.886)" in result.stdout
    assert "User turns per prefix: 1: 350, 2: 13, 3: 3" in result.stdout
    assert "Prefixes shared across sources: 10" in result.stdout
    pairs = read_jsonl(ws_dir / P.PAIRS)
    prefixes = read_jsonl(ws_dir / P.PREFIXES)
    assert len(prefixes) == len({p["prefix_id"] for p in pairs}) == 366
    assert sum(p["n_pairs"] for p in prefixes) == len(pairs)
    tsv = (ws_dir / P.PREFIX_ID_MAP).read_text(encoding="utf-8").splitlines()
    assert tsv[0] == "pair_id\tprefix_id"
    assert tsv[1:] == [f"{p['id']}\t{p['prefix_id']}" for p in pairs]
    stats = (ws_dir / P.STATS).read_text(encoding="utf-8")
    assert stats.startswith("[pairs]\nbudget: 200000\n")  # the pairs numbers stay in stats.txt
    assert "\n[prefixes]\npairs: 413\nunique_prefixes: 366\n" in stats
    manifest = Manifest.load(ws_dir / P.MANIFEST)
    run = manifest.runs["prefixes"]
    assert run.stats["unique_prefixes"] == 366 and run.output(P.PREFIXES).rows == 366
    assert manifest.owner_of(P.STATS).key == "prefixes"
    assert [i.path for i in run.inputs] == [P.PAIRS]
    assert kat("status").exit_code == 0


def test_prefixes_needs_pairs(kat):
    result = kat("prefixes")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: data/pairs_all.jsonl is missing", "Hint: run `kat pairs download` first"]


def test_prefixes_refuses_modified_pairs_unless_forced(kat, ws_dir):
    assert kat("-q", "pairs", "download", "--from", "sample", "--budget", "20").exit_code == 0
    with open(ws_dir / P.PAIRS, "ab") as fh:
        fh.write(b"\n")
    result = kat("prefixes")
    assert result.exit_code == 1
    # Quoted without its `-w DIR`: in a copied or moved workspace that would name the wrong place.
    assert result.stderr.startswith(
        "Error: data/pairs_all.jsonl was modified after `kat -q pairs download --from sample --budget 20` wrote it\n")
    forced = kat("prefixes", "--force")
    assert forced.exit_code == 0
    assert "Forced: data/pairs_all.jsonl was modified after" in forced.stdout


def test_real_hh_rows_agree_with_an_independent_parse(kat, ws_dir, tmp_path, hh_real):
    """Acceptance: ≥ 99.5% of rows give the same prefix, replies and prefix_id as an independent parse."""
    mirror = tmp_path / "mirror"
    (mirror / HH_DIR / "harmless-base").mkdir(parents=True)
    shutil.copy(hh_real, mirror / HH_DIR / "harmless-base" / "test.jsonl.gz")
    result = kat("pairs", "download", "--from", str(mirror), "--source", "hh", "--budget", "5000")
    assert result.exit_code == 0, result.output
    assert kat("-q", "prefixes").exit_code == 0

    pairs = {p["id"]: p for p in read_jsonl(ws_dir / P.PAIRS)}
    mapping = dict(line.split("\t") for line in (ws_dir / P.PREFIX_ID_MAP).read_text().splitlines()[1:])
    prefixes = {p["id"]: p for p in read_jsonl(ws_dir / P.PREFIXES)}
    rows = [json.loads(line) for line in gzip.open(hh_real, "rt", encoding="utf-8")]
    agree = 0
    for i, row in enumerate(rows):
        ref = independent_hh(row["chosen"], row["rejected"])
        got = pairs.get(f"hh/harmless-base/test/{i}")
        if ref is None or got is None:
            agree += ref is None and got is None
            continue
        messages, chosen, rejected, pid = ref
        agree += (
            got["prefix"]["messages"] == messages and got["chosen"] == chosen and got["rejected"] == rejected
            and got["prefix_id"] == pid and mapping[got["id"]] == pid
            and prefixes[pid]["prefix"]["messages"][0] == messages[0]
        )
    assert agree / len(rows) >= 0.995, f"{agree}/{len(rows)}"
    stats = Manifest.load(ws_dir / P.MANIFEST).runs["pairs"].stats["sources"]["hh-rlhf"]
    assert stats["rows_read"] == 1000 and stats["pairs_kept"] == len(pairs)
    assert "harmless-base/train" in stats["missing"]
