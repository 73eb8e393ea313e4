"""Pairs/s per source for `kat pairs download --from DIR`, on a generated local mirror.

Baseline (issue 3): the goal of 10,000 pairs/s per source; `ratio_to_goal` is measured / goal. The mirror is
the sample generator at a larger `--scale` (same schemas and layout as the hub). Each source is timed on
its own, end to end through the same code path as the CLI (locate → read via `datasets` → parse → select
→ write JSONL), after one warm-up run that pays the one-off `datasets`/torch import (reported separately).
With the real HH rows present (../shared), their parse rate alone is reported too. Prints one JSON object.

    python bench/bench_pairs.py [--quick] [--scale N] [--repeats R]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import tempfile
import time
from fractions import Fraction
from pathlib import Path

GOAL_PAIRS_PER_S = 10_000
REAL_HH = Path(__file__).resolve().parents[1].parent / "shared/data/hh-rlhf/harmless-base-test-first1000.jsonl.gz"


def _download(mirror: Path, source: str, budget: int) -> tuple[float, int, int]:
    from katcli.data.download import DownloadOptions, download_pairs

    opts = DownloadOptions(sources=(source,), budget=budget, mix={source: Fraction(1)}, from_dir=str(mirror))
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        report = download_pairs(opts, out)
        dt = time.perf_counter() - t0
    st = report.stats[source]
    return dt, st.pairs_kept, st.rows_read


def _real_hh_parse_rate(repeats: int) -> dict | None:
    if not REAL_HH.is_file():
        return None
    from katcli.data import hh
    from katcli.data.schema import Drop

    rows = [json.loads(line) for line in gzip.open(REAL_HH, "rt", encoding="utf-8")]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for r in rows:
            try:
                hh.parse_row(r["chosen"], r["rejected"])
            except Drop:
                pass
        best = min(best, time.perf_counter() - t0)
    return {"rows": len(rows), "rows_per_s": round(len(rows) / best)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a smaller mirror (scale 15), one repeat")
    ap.add_argument("--scale", type=int, default=80, help="generator scale (≈145·scale HH rows, 150·scale SE)")
    ap.add_argument("--repeats", type=int, default=2, help="best of R timed runs per source")
    args = ap.parse_args()
    if args.quick:
        args.scale, args.repeats = 15, 1
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    from katcli.data import schema
    from katcli.data.sources import sample_root
    from katcli.sample.generate import build

    with tempfile.TemporaryDirectory(prefix="kat-bench-pairs-") as tmp:
        mirror = Path(tmp)
        t0 = time.perf_counter()
        rows = build(mirror, scale=args.scale)
        gen_s = time.perf_counter() - t0
        mirror_bytes = sum(p.stat().st_size for p in mirror.rglob("*") if p.is_file())

        t0 = time.perf_counter()
        _download(sample_root(), schema.HH, 10)  # warm-up: imports datasets (and, through it, torch)
        warmup_s = time.perf_counter() - t0

        per_source = {}
        for source in schema.SOURCES:
            best = None
            for _ in range(args.repeats):
                dt, kept, read = _download(mirror, source, budget=10_000_000)
                if best is None or dt < best[0]:
                    best = (dt, kept, read)
            dt, kept, read = best
            rate = kept / dt
            per_source[source] = {
                "rows_in_mirror": rows[source],
                "rows_read": read,
                "pairs": kept,
                "seconds": round(dt, 3),
                "pairs_per_s": round(rate),
                "ratio_to_goal": round(rate / GOAL_PAIRS_PER_S, 2),
            }
        # A budget below a source's size exercises the seeded pick (HH/UF: parsed once, picked lines re-read from the spool).
        dt, kept, _ = _download(mirror, schema.HH, budget=rows[schema.HH] // 2)
        half = {"pairs": kept, "seconds": round(dt, 3), "pairs_per_s": round(kept / dt)}

    print(json.dumps({
        "bench": "pairs",
        "goal_pairs_per_s": GOAL_PAIRS_PER_S,
        "scale": args.scale,
        "mirror_mb": round(mirror_bytes / 2**20, 1),
        "generate_s": round(gen_s, 2),
        "warmup_import_s": round(warmup_s, 2),
        "per_source": per_source,
        "hh_half_budget": half,
        "all_sources_meet_goal": all(v["pairs_per_s"] >= GOAL_PAIRS_PER_S for v in per_source.values()),
        "real_hh_parse_only": _real_hh_parse_rate(3),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }))


if __name__ == "__main__":
    main()
