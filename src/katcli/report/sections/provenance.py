"""Provenance: kat's version, the sources and their pair counts, every run's command and state, every checksum.

Freshness is `kat status`'s judgement (`ctx.status`, schema kat.status/1), shown as it is, never re-derived. Pair
and prompt counts per source are what `kat pairs` and `kat prefixes` recorded in the manifest. Every artifact
listed is read through the context, so the report becomes stale when any run it shows changes. Present whenever
the manifest records a run.
"""

from __future__ import annotations

import shlex

from typing import Any

from katcli.report.context import ReportContext
from katcli.report.document import Paragraph, Section, table
from katcli.report.sections import SectionSpec

SHA_CHARS = 16


def _sources(ctx: ReportContext) -> list[list[str]]:
    pairs = ctx.runs.get("pairs")
    prefixes = ctx.runs.get("prefixes")
    kept: dict[str, Any] = {}
    if pairs is not None:
        kept = {s: v.get("pairs_kept") for s, v in (pairs.stats.get("sources") or {}).items() if isinstance(v, dict)}
    if prefixes is not None and not kept:
        kept = dict(prefixes.stats.get("pairs_by_src") or {})
    prompts = dict(prefixes.stats.get("prefixes_by_src") or {}) if prefixes is not None else {}
    rows = [[s, f"{kept[s]:,}" if isinstance(kept.get(s), int) else "–",
             f"{prompts[s]:,}" if isinstance(prompts.get(s), int) else "–"] for s in sorted(set(kept) | set(prompts))]
    if rows and pairs is not None and isinstance(pairs.stats.get("pairs_total"), int):
        total_prompts = prefixes.stats.get("unique_prefixes") if prefixes is not None else None
        rows.append(["all sources", f"{pairs.stats['pairs_total']:,}",
                     f"{total_prompts:,}" if isinstance(total_prompts, int) else "–"])
    return rows


def _size(n: int | None) -> str:
    return "–" if n is None else f"{n:,}"


def _without_display_flags(command: str) -> str:
    """A run's command minus the global -q/-v: they change what is printed, never what is computed."""
    argv = shlex.split(command)
    head = 1
    while head < len(argv) and argv[head] in ("-q", "-v", "--quiet", "--verbose", "-qv", "-vq"):
        head += 1
    return shlex.join(argv[:1] + argv[head:])


def unhealthy_runs(ctx: ReportContext) -> list[str]:
    """One line per run `kat status` does not judge ok: what is wrong and the command that fixes it."""
    return [f"{s['key']} is {s['state']}: {'; '.join(s['reasons'])} (re-run `{s['command']}`)"
            for s in ctx.status.get("stages", []) if s.get("last_run") and s["state"] != "ok"]


def build(ctx: ReportContext) -> Section | None:
    stages = [s for s in ctx.status.get("stages", []) if s.get("last_run") is not None]
    if not stages:
        return None
    section = Section("provenance", "Provenance")
    # No workspace path and no run times: the same inputs and seed give the same report bytes wherever and
    # whenever they ran (the manifest keeps both).
    section.add(Paragraph(f"Made by kat {ctx.kat_version}. Every number below comes from the files listed under "
                          "Checksums."))
    sources = _sources(ctx)
    if sources:
        section.add(Paragraph("Sources: preference pairs kept and unique prompts per source (a prompt shared by "
                              "two sources counts for each)."),
                    table(["Source", "Pairs", "Prompts"], sources))
    rows = []
    for s in stages:
        last = s["last_run"]
        rows.append([s["key"], s["state"] + (" (forced)" if last["forced"] else ""), _without_display_flags(s["command"]),
                     last["kat_version"]])
    unhealthy = unhealthy_runs(ctx)
    section.add(Paragraph("Runs: the command of every run recorded in the manifest (without its `-w DIR`) and its "
                          "state as `kat status` judges it."),
                table(["Run", "State", "Command", "kat"], rows, numeric=(False,) * 4))
    if unhealthy:
        section.add(Paragraph("Not up to date: " + " · ".join(unhealthy)))
    else:
        section.add(Paragraph("Every run is up to date: no input changed after the run that read it."))

    checks = []
    for s in stages:
        for a in s["artifacts"]:
            if a["exists"]:
                ctx.read(a["path"])
            shape = "×".join(str(d) for d in a["shape"]) if a.get("shape") else _size(a.get("rows"))
            checks.append([a["path"], s["key"], a["state"], (a.get("sha256") or "–")[:SHA_CHARS],
                           _size(a.get("size")), shape])
    section.add(Paragraph(f"Checksums: each run's files as they are now (first {SHA_CHARS} hex digits of "
                          "the sha256)."),
                table(["File", "Run", "State", "sha256", "Bytes", "Rows/shape"], checks,
                      numeric=(False, False, False, False, True, True)))
    external = sorted({(i.path, i.sha256 or "not hashed") for r in ctx.runs.values() for i in r.inputs if i.external})
    if external:
        section.add(Paragraph("Inputs from outside the workspace, as they were read."),
                    table(["Path", "sha256"], [[p, h[:SHA_CHARS]] for p, h in external], numeric=(False, False)))
    return section


SPEC = SectionSpec("provenance", "Provenance", build)
