"""The `prefixes` stage: `kat prefixes` dedupes `pairs_all.jsonl` into unique conversation prefixes.

Input: `data/pairs_all.jsonl`, checked against the manifest (missing, modified or stale → UpstreamError
naming the command that fixes it, unless --force). Outputs, swapped in together by `StageRun`:
`data/prefixes_all.jsonl`, `data/prefix_id_map.tsv` and `data/stats.txt` — the latter keeps the
`[pairs]` section (re-rendered from the pairs run's manifest stats) and adds `[prefixes]`. The work is
`katcli.data.prefixes`, which streams; this module wires files and the manifest, knowing nothing of
Typer or Rich.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from katcli.pipeline.stage import StageRun
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P

STAGE = "prefixes"


@dataclass(frozen=True)
class PrefixesConfig:
    force: bool = False


@dataclass
class PrefixesResult:
    prefixes_path: Path
    map_path: Path
    stats_path: Path
    stats: dict[str, Any]  # exactly what the manifest records as run.stats
    forced_over: list[str] = field(default_factory=list)


def run_prefixes(ws: Workspace, cfg: PrefixesConfig, *, progress: ProgressFn = no_progress) -> PrefixesResult:
    from katcli.data.prefixes import build_prefixes, format_prefix_stats
    from katcli.data.stats import format_pairs_section

    with StageRun(ws, STAGE, params={}, force=cfg.force) as run:
        pairs = run.input(P.PAIRS)
        tmp_prefixes, tmp_map = run.output(P.PREFIXES), run.output(P.PREFIX_ID_MAP)
        with open(tmp_prefixes, "wb") as fp, open(tmp_map, "wb") as fm:
            report = build_prefixes(pairs, fp, fm, progress=progress)
        stats = report.to_json()
        producer = run.judge.manifest.owner_of(P.PAIRS)
        pairs_section = format_pairs_section(producer.stats) + "\n" if producer and producer.stats else ""
        run.output(P.STATS).write_text(pairs_section + format_prefix_stats(stats), encoding="utf-8")
        run.describe(P.PREFIXES, rows=report.unique)
        run.describe(P.PREFIX_ID_MAP, rows=report.pairs)
        run.stats.update(stats)
        forced = list(run.forced_over)
    return PrefixesResult(ws.abs(P.PREFIXES), ws.abs(P.PREFIX_ID_MAP), ws.abs(P.STATS), stats, forced)
