"""The `pairs` stage: `kat pairs download` and `kat pairs import` write `data/pairs_all.jsonl`.

Both record themselves under the stage key `pairs` (a new run of either replaces the last) and write
`data/stats.txt` with the `[pairs]` section, whose numbers are also the manifest's `run.stats`.
Download locates every source *before* the workspace is touched, so an unreachable hub or an empty mirror
leaves nothing behind; any later failure is discarded by `StageRun` (temp files removed, manifest
unchanged). The work itself is `katcli.data.download` / `katcli.data.importer`; this module wires flags,
files and the manifest, and knows nothing about Typer or Rich.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from katcli.errors import ConfigError
from katcli.pipeline.stage import StageRun
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P

STAGE = "pairs"
DEFAULT_SOURCES = ("hh", "uf", "se")
DEFAULT_BUDGET = "200k"
DEFAULT_MIX = None  # weight 1 for every chosen source
DEFAULT_SPLITS = ("train",)


def _fmt_weight(w: Fraction) -> str:
    return str(w.numerator) if w.denominator == 1 else f"{float(w):g}"


@dataclass(frozen=True)
class DownloadConfig:
    sources: tuple[str, ...] = DEFAULT_SOURCES  # short names: hh, uf, se; () with datasets: none of them
    budget: str = DEFAULT_BUDGET
    mix: str | None = DEFAULT_MIX
    from_dir: str | None = None
    seed: int = 0
    keep_ties: bool = False
    se_pairs_per_question: int = 1
    force: bool = False
    datasets: tuple[str, ...] = ()  # `--dataset [LABEL=]NAME_OR_DIR`
    config: str | None = None
    splits: tuple[str, ...] = DEFAULT_SPLITS
    columns: str | None = None  # `--columns prompt=…,chosen=…,rejected=…`

    def options(self):  # -> katcli.data.download.DownloadOptions
        """Validated domain options; `ConfigError` names the offending flag."""
        from katcli.data import budget as B
        from katcli.data import schema
        from katcli.data.download import DownloadOptions

        from katcli.data.datasets_source import make_specs
        from katcli.data.preference import parse_columns

        unknown = [s for s in self.sources if s not in schema.SHORT_NAMES]
        if unknown:
            raise ConfigError(f"--source must be hh, uf or se, got {unknown[0]!r}")
        columns = parse_columns(self.columns)
        if not self.datasets and (self.config is not None or self.columns is not None
                                  or tuple(self.splits) != DEFAULT_SPLITS):
            raise ConfigError("--config, --split and --columns describe a --dataset; add one")
        specs = make_specs(tuple(self.datasets), config=self.config, splits=tuple(self.splits), columns=columns)
        chosen = [schema.SHORT_NAMES[s] for s in dict.fromkeys(self.sources)]
        if not chosen and not specs:
            chosen = list(schema.SOURCES)
        chosen = [s for s in schema.SOURCES if s in chosen]
        short = {**schema.SHORT_OF, **{d.label: d.label for d in specs}}
        names = [*chosen, *(d.label for d in specs)]
        if self.mix is None:
            mix = {s: Fraction(1) for s in names}
        else:
            weights = B.parse_mix(self.mix, (*schema.SHORT_NAMES, *(d.label for d in specs)))
            mix = {schema.SHORT_NAMES.get(k, k): w for k, w in weights.items()}
        for s in names:
            if s not in mix:
                raise ConfigError(f"--mix gives no weight to the chosen source {short[s]!r} (add {short[s]}=1)")
        if self.se_pairs_per_question < 1:
            raise ConfigError("--se-pairs-per-question must be at least 1")
        if self.seed < 0:
            raise ConfigError("--seed must be at least 0")
        opts = DownloadOptions(
            sources=tuple(chosen), budget=B.parse_budget(self.budget), mix=mix, seed=self.seed,
            from_dir=self.from_dir, keep_ties=self.keep_ties, se_pairs_per_question=self.se_pairs_per_question,
            datasets=specs,
        )
        opts.validate()
        return opts

    def params(self, opts) -> dict[str, Any]:
        from katcli.data import schema

        short = schema.SHORT_OF
        params: dict[str, Any] = {
            "sources": [s for s in opts.sources],
            "budget": opts.budget,
            "mix": {short.get(s, s): _fmt_weight(opts.mix[s]) for s in opts.names},
            "from": self.from_dir,
            "seed": opts.seed,
            "keep_ties": opts.keep_ties,
            "se_pairs_per_question": opts.se_pairs_per_question,
        }
        if opts.datasets:
            params["datasets"] = [
                {"label": d.label, "name": d.name, "config": d.config, "splits": list(d.splits),
                 "columns": d.columns.describe()} for d in opts.datasets
            ]
        return params


@dataclass
class PairsResult:
    path: Path
    stats_path: Path
    pairs: int
    stats: dict[str, Any]  # exactly what the manifest records as run.stats
    notes: list[str] = field(default_factory=list)


def run_download(ws: Workspace, cfg: DownloadConfig, *, progress: ProgressFn = no_progress) -> PairsResult:
    """Download (or read from a mirror) the budgeted pairs and record the `pairs` stage."""
    from katcli.data.download import download_pairs, locate_sources
    from katcli.data.sources import resolve_from
    from katcli.data.stats import format_pairs_stats

    opts = cfg.options()
    located = locate_sources(opts)  # hub/mirror problems surface here, before the workspace is touched
    with StageRun(ws, STAGE, params=cfg.params(opts), force=cfg.force) as run:
        if cfg.from_dir is not None:
            run.external_input(resolve_from(cfg.from_dir), hash_file=False)
        for loc in located.values():
            if loc.root is not None:  # a --dataset directory
                run.external_input(loc.root, hash_file=False)
        tmp = run.output(P.PAIRS)
        with open(tmp, "wb") as fh:
            report = download_pairs(opts, fh, located=located, spool_dir=tmp.parent, progress=progress)
        params = cfg.params(opts)
        stats: dict[str, Any] = {
            "kind": "download",
            "budget": opts.budget,
            "mix": ",".join(f"{k}={v}" for k, v in params["mix"].items()),
            "seed": opts.seed,
            "pairs_total": report.total_kept,
            "sources": {s: st.to_json() for s, st in report.stats.items()},
            "notes": list(report.notes),
        }
        run.output(P.STATS).write_text(format_pairs_stats(stats), encoding="utf-8")
        run.describe(P.PAIRS, rows=report.total_kept)
        run.stats.update(stats)
    return PairsResult(ws.abs(P.PAIRS), ws.abs(P.STATS), report.total_kept, stats, list(report.notes))


@dataclass(frozen=True)
class ImportConfig:
    files: tuple[Path, ...]
    skip_invalid: bool = False
    force: bool = False

    def validate(self) -> None:
        if not self.files:
            raise ConfigError("pass at least one FILE to import")
        for f in self.files:
            if Path(f).is_dir():
                raise ConfigError(f"FILE {f} is a directory", hint=f"pass the JSONL files inside it, e.g. {f}/*.jsonl")
            if not Path(f).is_file():
                raise ConfigError(f"FILE {f} does not exist", hint="check the path (relative paths start at the "
                                  "current directory, not the workspace)")


def run_import(ws: Workspace, cfg: ImportConfig, *, progress: ProgressFn = no_progress) -> PairsResult:
    """Validate the user's JSONL files into `pairs_all.jsonl` and record the `pairs` stage."""
    from katcli.data.importer import import_pairs
    from katcli.data.stats import format_import_stats

    cfg.validate()
    params = {"files": [str(f) for f in cfg.files], "skip_invalid": cfg.skip_invalid}
    with StageRun(ws, STAGE, params=params, force=cfg.force) as run:
        for f in cfg.files:
            run.external_input(f, hash_file=True)
        tmp = run.output(P.PAIRS)
        with open(tmp, "wb") as fh:
            report = import_pairs(list(cfg.files), fh, skip_invalid=cfg.skip_invalid, progress=progress)
        stats = {"kind": "import", **report.to_json()}
        run.output(P.STATS).write_text(format_import_stats(stats), encoding="utf-8")
        run.describe(P.PAIRS, rows=report.pairs_written)
        run.stats.update(stats)
    return PairsResult(ws.abs(P.PAIRS), ws.abs(P.STATS), report.pairs_written, stats)
