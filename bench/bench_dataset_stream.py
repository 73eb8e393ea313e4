"""`kat pairs download --dataset DIR --budget 50k` on a generated 1M-row local parquet dataset: rows read, memory.

Goal (issue 28): a budget of 50k pairs reads at most 10% of the dataset's rows and stays under 500 MB of memory.
The dataset is written here, in the hub's layout (`data/train-0000k-of-00010.parquet`, 100k rows per shard in
row groups of 10k, TRL's standard explicit form plus an unused wide `meta` column, as real sets carry). The
download runs in a fresh (spawned) process, end to end through the same code path as the CLI (locate → stream via
`datasets` → parse → budget → write JSONL); rows are counted where `datasets` hands Arrow batches over (every row
fetched, not only the rows kat parsed), and memory is that process's peak RSS. Beside it, in the same run, the
peer: one plain streaming pass of `datasets` over the whole dataset (no parsing), the least a reader without a
budget-aware stream must do. Prints one JSON object.

    python bench/bench_dataset_stream.py [--rows N] [--budget N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import tempfile
import time
from pathlib import Path

GOAL_READ_SHARE = 0.10
GOAL_RSS_MB = 500
SHARDS = 10
ROW_GROUP = 10_000


def _generate(root: Path, rows: int) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    per = rows // SHARDS
    for k in range(SHARDS):
        ids = range(k * per, (k + 1) * per)
        table = pa.table({
            "prompt": [f"Question {i}: how would you explain topic {i % 977} to a curious student?" for i in ids],
            "chosen": [f"A careful, correct answer about topic {i % 977}, with an example." for i in ids],
            "rejected": [f"An answer about topic {i % 977} that misses the point." for i in ids],
            "meta": [("source=generated;" * 12) + str(i) for i in ids],
        })
        f = root / "data" / f"train-{k:05d}-of-{SHARDS:05d}.parquet"
        f.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, f, row_group_size=ROW_GROUP)
    return per * SHARDS


def _count_fetched():
    """Wrap `IterableDataset.iter` so every Arrow batch handed over is counted; returns the counter."""
    import datasets

    fetched = [0]
    inner = datasets.IterableDataset.iter

    def counting(self, *args, **kwargs):
        for batch in inner(self, *args, **kwargs):
            fetched[0] += batch.num_rows if hasattr(batch, "num_rows") else len(next(iter(batch.values()), []))
            yield batch

    datasets.IterableDataset.iter = counting
    return fetched


def _peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def _kat_child(root: str, budget: int, out: str, queue) -> None:
    from fractions import Fraction

    from katcli.data.datasets_source import make_specs
    from katcli.data.download import DownloadOptions, download_pairs
    from katcli.data.preference import parse_columns

    fetched = _count_fetched()
    specs = make_specs((root,), config=None, splits=("train",), columns=parse_columns(None))
    opts = DownloadOptions(sources=(), budget=budget, mix={specs[0].label: Fraction(1)}, datasets=specs)
    t0 = time.perf_counter()
    with open(out, "wb") as fh:
        report = download_pairs(opts, fh)
    dt = time.perf_counter() - t0
    st = report.stats[specs[0].label]
    queue.put({"seconds": round(dt, 2), "pairs_kept": st.pairs_kept, "rows_parsed": st.rows_read,
               "rows_fetched": fetched[0], "peak_rss_mb": _peak_rss_mb()})


def _peer_child(root: str, queue) -> None:
    import datasets

    fetched = _count_fetched()
    t0 = time.perf_counter()
    ds = datasets.load_dataset(root, split="train", streaming=True)
    for _ in ds.with_format("arrow").iter(batch_size=512):
        pass
    queue.put({"seconds": round(time.perf_counter() - t0, 2), "rows_fetched": fetched[0],
               "peak_rss_mb": _peak_rss_mb()})


def _in_child(target, *args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--budget", type=int, default=50_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kat-bench-ds-") as tmp:
        root = Path(tmp) / "prefs"
        t0 = time.perf_counter()
        rows = _generate(root, args.rows)
        gen_s = time.perf_counter() - t0
        size_mb = sum(f.stat().st_size for f in root.rglob("*.parquet")) / 2**20
        kat = _in_child(_kat_child, str(root), args.budget, str(Path(tmp) / "pairs.jsonl"))
        peer = _in_child(_peer_child, str(root))
    share = kat["rows_fetched"] / rows
    print(json.dumps({
        "bench": "dataset_stream",
        "dataset": {"rows": rows, "shards": SHARDS, "row_group": ROW_GROUP, "parquet_mb": round(size_mb, 1),
                    "generate_s": round(gen_s, 1)},
        "budget": args.budget,
        "kat": kat,
        "read_share": round(share, 4),
        "goal_read_share": GOAL_READ_SHARE,
        "read_share_ok": share <= GOAL_READ_SHARE,
        "rss_ratio_to_goal": round(kat["peak_rss_mb"] / GOAL_RSS_MB, 3),
        "rss_ok": kat["peak_rss_mb"] < GOAL_RSS_MB,
        "peer_full_stream": peer,
        "time_ratio_to_peer": round(kat["seconds"] / peer["seconds"], 3) if peer["seconds"] else None,
        "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
