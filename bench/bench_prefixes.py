"""`kat prefixes` on 1M pairs: wall time and peak memory of the real command.

Baseline (issue 3): the goals of ≤ 30 s and peak RSS ≤ 1 GB for 1M pairs; `ratio_to_goal` is measured / goal
(below 1 is better). A workspace is filled with synthetic pairs in kat's exact schema (recorded as the
`pairs` stage through StageRun, so the upstream check is real); prompts repeat so that about 60% of the
pairs have a unique prefix, with 1–3 user turns and realistic text lengths. Then `python -m katcli -q
prefixes` runs as a child process, timed end to end (start-up, upstream check, both passes, hashing,
manifest) with its peak RSS from getrusage. Prints one JSON object.

    python bench/bench_prefixes.py [--quick] [--pairs N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 30.0
GOAL_RSS_MB = 1024.0
WORDS = ("the model prefers answers that are short clear helpful kind correct and specific about what the user "
         "asked for while avoiding rude vague or wrong replies in every domain from cooking to code").split()


def _text(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def write_pairs(ws_root: Path, n_pairs: int, unique_share: float, seed: int = 0) -> tuple[int, int]:
    from katcli.data import schema
    from katcli.pipeline.stage import StageRun
    from katcli.workspace import Workspace
    from katcli.workspace import paths as P

    rng = random.Random(seed)
    n_prompts = max(1, int(n_pairs * unique_share))
    srcs = schema.SOURCES
    with StageRun(Workspace(ws_root), "pairs", params={"bench": True}, command="bench_prefixes") as run:
        tmp = run.output(P.PAIRS)
        with open(tmp, "wb") as fh:
            for i in range(n_pairs):
                k = i if i < n_prompts else rng.randrange(n_prompts)  # every prompt once, then repeats
                first = f"prompt {k}: " + _text(random.Random(k), 8, 60)
                turns = 1 + k % 3
                msgs = [{"role": "user", "content": first}]
                for t in range(1, turns):
                    msgs += [{"role": "assistant", "content": _text(rng, 10, 40)},
                             {"role": "user", "content": _text(rng, 4, 20)}]
                pair = schema.make_pair(
                    pair_id=f"bench/{i}", messages=msgs, chosen=_text(rng, 20, 90), rejected=_text(rng, 5, 60),
                    src=srcs[k % 3], split="train", meta={"k": k},
                )
                fh.write(schema.encode_pair(pair))
        run.describe(P.PAIRS, rows=n_pairs)
        size = tmp.stat().st_size
    return n_prompts, size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="100k pairs instead of 1M")
    ap.add_argument("--pairs", type=int, default=1_000_000)
    ap.add_argument("--unique-share", type=float, default=0.6, help="unique prefixes / pairs")
    args = ap.parse_args()
    if args.quick:
        args.pairs = 100_000

    with tempfile.TemporaryDirectory(prefix="kat-bench-prefixes-") as tmp:
        ws = Path(tmp) / "ws"
        t0 = time.perf_counter()
        n_prompts, size = write_pairs(ws, args.pairs, args.unique_share)
        gen_s = time.perf_counter() - t0

        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "katcli", "-w", str(ws), "-q", "prefixes"],
                              env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"kat prefixes failed ({proc.returncode}): {proc.stderr[-2000:]}")
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
        manifest = json.loads((ws / "manifest.json").read_text(encoding="utf-8"))
        stats = manifest["runs"]["prefixes"]["stats"]
        prefixes_mb = (ws / "data" / "prefixes_all.jsonl").stat().st_size / 2**20

    print(json.dumps({
        "bench": "prefixes",
        "pairs": args.pairs,
        "unique_prefixes": stats["unique_prefixes"],
        "expected_unique": n_prompts,
        "pairs_file_mb": round(size / 2**20, 1),
        "prefixes_file_mb": round(prefixes_mb, 1),
        "generate_s": round(gen_s, 1),
        "wall_s": round(wall, 2),
        "pairs_per_s": round(args.pairs / wall),
        "peak_rss_mb": round(rss_mb, 1),
        "goal_wall_s": GOAL_S,
        "goal_peak_rss_mb": GOAL_RSS_MB,
        "wall_ratio_to_goal": round(wall / GOAL_S, 3),
        "rss_ratio_to_goal": round(rss_mb / GOAL_RSS_MB, 3),
        "meets_goals": wall <= GOAL_S and rss_mb <= GOAL_RSS_MB,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }))


if __name__ == "__main__":
    main()
