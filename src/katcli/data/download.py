"""Build `pairs_all.jsonl` from the chosen sources within a budget: read, parse, allocate, pick, write.

The order of work follows from what can be known when:
1. locate every chosen source first (a hub or mirror problem stops the run before anything is written);
2. HH-RLHF and UltraFeedback are small: read them whole once, parse every row once, and spool each valid
   pair's encoded line to a temporary file (remembering row number, offset and lengths), so their capacity
   is exact and the pick below needs no second parse;
3. allocate the budget by `--mix` weights with the streamed sources' capacity unknown — Stack Exchange
   (≈10.7M questions) and every `--dataset` (any size);
4. stream each of them up to its share, water-filling across its groups (SE sites from the smallest up,
   dataset splits in the order given) so a truncated read spreads over every group rather than taking the
   first (a group that runs dry passes its remainder on; a second round revisits groups that were cut off at
   their share; a multi-shard group starts at a seeded shard); their pairs are spooled to temporary files;
5. if a streamed source fell short, re-allocate: the others take the rest (up to their capacity; a streamed
   source given more is streamed on from where it stopped);
6. pick HH/UF rows per group (subset × split) in proportion to group sizes, by seeded hash, and copy
   their lines from the spool; then append the streamed spools. Output order: hh-rlhf, ultrafeedback,
   stack-exchange, then the datasets as given.

Every dropped row is counted by reason. Writes to a binary handle given by the caller (the pipeline owns
atomicity). Knows nothing about the workspace, manifest or CLI.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from array import array
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

from katcli.data import budget as B
from katcli.data import hh, preference, schema, sources, stackexchange, ultrafeedback
from katcli.data.datasets_source import DatasetSpec, locate_dataset
from katcli.data.keys import derived_split, prefix_id
from katcli.data.schema import Drop
from katcli.data.stats import SourceStats
from katcli.errors import ConfigError, KatError
from katcli.progress import ProgressFn, no_progress

_TICK = 1000  # progress is reported every _TICK rows


@dataclass(frozen=True)
class DownloadOptions:
    sources: tuple[str, ...]  # full source names, canonical order
    budget: int
    mix: dict[str, Fraction]  # full source name → weight
    seed: int = 0
    from_dir: str | None = None
    keep_ties: bool = False
    se_pairs_per_question: int = 1
    datasets: tuple[DatasetSpec, ...] = ()  # `--dataset` sources, after the built-in ones

    @property
    def names(self) -> tuple[str, ...]:
        """Every chosen source's name (its `src`), in output order."""
        return self.sources + tuple(d.label for d in self.datasets)

    def validate(self) -> None:
        if not self.sources and not self.datasets:
            raise ConfigError("--source: choose at least one of hh, uf, se (or a --dataset)")
        if self.budget < 1:
            raise ConfigError("--budget must be at least 1")
        if self.se_pairs_per_question < 1:
            raise ConfigError("--se-pairs-per-question must be at least 1")
        if all(self.mix.get(s, 0) == 0 for s in self.names):
            raise ConfigError("--mix gives every chosen source weight 0")


@dataclass
class DownloadReport:
    stats: dict[str, SourceStats]
    notes: list[str] = field(default_factory=list)

    @property
    def total_kept(self) -> int:
        return sum(s.pairs_kept for s in self.stats.values())


@dataclass
class _Site:
    """A group being streamed (a Stack Exchange site, a dataset split): how many of its rows were used so far."""

    group: sources.Group
    consumed: int = 0
    exhausted: bool = False


@dataclass
class _Pass1:
    """Per group of a fully-read source: the valid rows, and where each one's encoded line sits in the spool."""

    group: sources.Group
    valid: array = field(default_factory=lambda: array("q"))  # row numbers that parsed into a pair
    offset: array = field(default_factory=lambda: array("q"))  # byte offset of that pair's line in the spool
    length: array = field(default_factory=lambda: array("l"))
    lengths: array = field(default_factory=lambda: array("l"))  # prompt chars, messages, chosen, rejected (x4)


def _row_pair(source: str, group: sources.Group, index: int, row: dict[str, Any], keep_ties: bool) -> dict:
    if source == schema.HH:
        p = hh.parse_row(row.get("chosen"), row.get("rejected"))
        return schema.make_pair(
            pair_id=f"hh/{group.name}/{index}", messages=p.messages, chosen=p.chosen, rejected=p.rejected,
            src=schema.HH, split=group.split, meta={"subset": group.subset},
        )
    u = ultrafeedback.parse_row(row, keep_ties=keep_ties)
    return schema.make_pair(
        pair_id=f"uf/{group.name}/{index}", messages=u.messages, chosen=u.chosen, rejected=u.rejected,
        src=schema.UF, split=group.split, meta=u.meta,
    )


class _Downloader:
    def __init__(self, opts: DownloadOptions, progress: ProgressFn) -> None:
        self.opts = opts
        self.progress = progress
        self.stats = {s: SourceStats(s) for s in opts.names}
        self.notes: list[str] = []
        self.columns = {d.label: d.columns for d in opts.datasets}
        self.sites: dict[str, list[_Site]] = {}  # per streamed source, kept across re-allocations

    # -- step 2 ------------------------------------------------------------------------------
    def read_whole(self, located: sources.Located, spool: BinaryIO) -> list[_Pass1]:
        """Parse every row once; valid pairs are encoded into `spool` so the pick needs no second parse."""
        src, st = located.source, self.stats[located.source]
        task = f"read {src}"
        out = []
        for group in located.groups:
            p1 = _Pass1(group)
            for i, row in enumerate(sources.iter_group(group)):
                st.rows_read += 1
                try:
                    pair = _row_pair(src, group, i, row, self.opts.keep_ties)
                except Drop as d:
                    st.drop(d.reason)
                else:
                    line = schema.encode_pair(pair)
                    msgs = pair["prefix"]["messages"]
                    p1.valid.append(i)
                    p1.offset.append(spool.tell())
                    p1.length.append(len(line))
                    p1.lengths.extend(
                        (schema.text_chars(msgs), len(msgs), len(pair["chosen"]), len(pair["rejected"]))
                    )
                    spool.write(line)
                if st.rows_read % _TICK == 0:
                    self.progress(task, st.rows_read, None)
            st.pairs_valid += len(p1.valid)
            out.append(p1)
        self.progress(task, st.rows_read, st.rows_read)
        return out

    # -- step 4 ------------------------------------------------------------------------------
    def stream(self, located: sources.Located, quota: int, spool: BinaryIO) -> int:
        """Water-fill `quota` over the groups; later rounds revisit groups cut off at their share.

        A second call with a bigger quota goes on from where the first stopped. Returns the pairs kept.
        """
        src = located.source
        st = self.stats[src]
        if src not in self.sites:
            groups = sorted(located.groups, key=lambda g: (g.size, g.name)) if src == schema.SE else located.groups
            self.sites[src] = [_Site(g) for g in groups]
        active = [s for s in self.sites[src] if not s.exhausted]
        left = quota - st.pairs_kept
        while left > 0 and active:
            for k, site in enumerate(active):
                if left <= 0:
                    break
                left -= self._read_site(site, B.equal_share(left, len(active) - k), quota, spool)
            active = [s for s in active if not s.exhausted]
        self.progress(f"stream {src}", st.pairs_kept, st.pairs_kept)
        return st.pairs_kept

    def _read_site(self, site: _Site, share: int, quota: int, spool: BinaryIO) -> int:
        g = site.group
        st = self.stats[g.source]
        key = g.name if g.source == schema.SE else f"{g.source}/{g.name}"
        start = int.from_bytes(B.rank_key(self.opts.seed, key, 0), "big") % len(g.files)
        columns = sources.SE_COLUMNS if g.source == schema.SE else (list(g.columns) if g.columns else None)
        rows = sources.iter_group_rows(g, columns=columns, start_file=start)
        taken = 0
        for fi, ri, row in islice(rows, site.consumed, None):  # a revisit skips the rows already used
            site.consumed += 1
            st.rows_read += 1
            try:
                found = self._row_pairs(g, fi, ri, row)
            except Drop as d:
                st.drop(d.reason)
                continue
            st.pairs_valid += len(found)
            for pair in found:
                if taken >= share:
                    st.over_budget += 1
                    continue
                spool.write(schema.encode_pair(pair))
                msgs = pair["prefix"]["messages"]
                st.keep(g.name, schema.text_chars(msgs), len(msgs), len(pair["chosen"]), len(pair["rejected"]))
                taken += 1
                if st.pairs_kept % _TICK == 0:
                    self.progress(f"stream {g.source}", st.pairs_kept, quota)
            if taken >= share:
                return taken
        site.exhausted = True
        return taken

    def _row_pairs(self, g: sources.Group, fi: int, ri: int, row: dict[str, Any]) -> list[dict]:
        """The pairs of one streamed row: a Stack Exchange question's, or a dataset row's one."""
        if g.source == schema.SE:
            found = stackexchange.parse_question(row, g.name, pairs_per_question=self.opts.se_pairs_per_question)
            out = []
            for p in found:
                pid = prefix_id(p.messages)
                out.append(schema.make_pair(
                    pair_id=f"se/{g.name}/{p.pair_key}", messages=p.messages, chosen=p.chosen,
                    rejected=p.rejected, src=schema.SE, split=derived_split(pid), meta=p.meta, pid=pid,
                ))
            return out
        try:
            parsed = preference.parse_row(row, self.columns[g.source])
        except preference.FormatError as err:
            raise KatError(
                f"row {ri + 1} of {g.source}/{g.name}: {err.reason}", file=sources.shown_file(g.files[fi]),
                line=ri + 1, hint="name the dataset's columns with --columns prompt=COL,chosen=COL,rejected=COL",
            ) from None
        pid = prefix_id(parsed.messages)
        return [schema.make_pair(
            pair_id=f"{g.source}/{g.name}/{fi}:{ri}", messages=parsed.messages, chosen=parsed.chosen,
            rejected=parsed.rejected, src=g.source, split=g.split or derived_split(pid), meta={"split": g.name},
            pid=pid,
        )]

    def fill_streams(self, located: dict[str, sources.Located], plan: dict[str, int], weights: dict[str, Fraction],
                     capacity: dict[str, int | None], spool: dict[str, BinaryIO]) -> dict[str, int]:
        """Stream every source of unknown capacity up to its share; one that falls short passes the rest on."""
        while True:
            short = False
            for s, cap in list(capacity.items()):
                if cap is None and plan[s] > self.stats[s].pairs_kept:
                    got = self.stream(located[s], plan[s], spool[s])
                    if got < plan[s]:
                        capacity[s] = got
                        short = True
            if not short:
                return plan
            plan = B.allocate(self.opts.budget, weights, capacity)

    # -- step 6 ------------------------------------------------------------------------------
    def write_picked(self, src: str, passes: list[_Pass1], quota: int, spool: BinaryIO, out: BinaryIO) -> None:
        st = self.stats[src]
        shares = B.proportional(quota, [len(p.valid) for p in passes])
        task = f"write {src}"
        total = sum(shares)
        for p, share in zip(passes, shares):
            picked = set(B.pick(self.opts.seed, f"{src}/{p.group.name}", p.valid, share))
            for k, row in enumerate(p.valid):  # ascending rows; the spool holds them in the same order
                if row not in picked:
                    continue
                spool.seek(p.offset[k])
                out.write(spool.read(p.length[k]))
                a, b, c, d = p.lengths[4 * k:4 * k + 4]
                st.keep(p.group.name, a, b, c, d)
                if st.pairs_kept % _TICK == 0:
                    self.progress(task, st.pairs_kept, total)
        st.over_budget = st.pairs_valid - st.pairs_kept
        self.progress(task, st.pairs_kept, total)


def locate_sources(opts: DownloadOptions) -> dict[str, sources.Located]:
    """Find every chosen source's files (downloading HH/UF into the HF cache); KatError if one has none."""
    opts.validate()
    found = {s: sources.locate(s, opts.from_dir) for s in opts.sources}
    found.update({d.label: locate_dataset(d) for d in opts.datasets})
    return found


def download_pairs(
    opts: DownloadOptions,
    out: BinaryIO,
    *,
    located: dict[str, sources.Located] | None = None,
    spool_dir: Path | None = None,
    progress: ProgressFn = no_progress,
) -> DownloadReport:
    """Write the budgeted pairs to `out` (JSONL bytes) and return what was read, kept and dropped."""
    opts.validate()
    d = _Downloader(opts, progress)
    if located is None:
        located = locate_sources(opts)
    for s, loc in located.items():
        d.stats[s].origin = loc.origin
        d.stats[s].missing = list(loc.missing)
        if loc.missing:
            d.notes.append(f"{s}: not in {loc.origin}: {', '.join(loc.missing)}")

    with contextlib.ExitStack() as stack:
        spool = {s: stack.enter_context(tempfile.TemporaryFile(dir=spool_dir, prefix=f"kat-{s}-"))
                 for s in opts.names}
        whole = {s: d.read_whole(located[s], spool[s]) for s in opts.sources if s != schema.SE}
        capacity: dict[str, int | None] = {s: d.stats[s].pairs_valid for s in whole}
        weights = {s: opts.mix.get(s, Fraction(0)) for s in opts.names}
        capacity.update({s: None for s in opts.names if s not in whole})  # streamed: SE and the datasets
        plan = d.fill_streams(located, B.allocate(opts.budget, weights, capacity), weights, capacity, spool)
        for s in opts.names:
            d.stats[s].share = plan[s]
            if s in whole:
                d.write_picked(s, whole[s], plan[s], spool[s], out)
            else:
                spool[s].seek(0)
                shutil.copyfileobj(spool[s], out, 1 << 20)

    total = sum(st.pairs_kept for st in d.stats.values())
    if not total:
        read = sum(st.rows_read for st in d.stats.values())
        reasons = sum((st.dropped for st in d.stats.values()), start=Counter())
        why = ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items())) or "no rows"
        raise KatError(
            f"no valid pairs: {read} rows read, every one dropped ({why})",
            hint="check the mirror's files, or choose other sources with --source",
        )
    if total < opts.budget:
        d.notes.append(f"budget {opts.budget} not reached: the chosen sources gave {total} pairs")
    return DownloadReport(d.stats, d.notes)
