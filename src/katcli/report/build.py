"""From a `ReportContext` to the report's files, in memory: `report.html`, `report.md`, each figure's PNG and PDF.

Sections come from the registry in page order; those whose inputs are absent are left out. Every figure is drawn
once and its PNG is both written beside the page and inlined into it. The file names and bytes depend only on
the workspace's contents, never on the time or the machine. Nothing is written here: the pipeline stage owns temp
files, atomic replacement and the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

from katcli.progress import ProgressFn, no_progress
from katcli.report.context import ReportContext
from katcli.report.document import Paragraph, Report, Section
from katcli.report.plotting import render
from katcli.report.render import to_html, to_markdown
from katcli.report.sections import registry
from katcli.report.sections.provenance import unhealthy_runs

HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"


@dataclass(frozen=True)
class BuiltReport:
    report: Report
    files: dict[str, bytes]  # file name (beside the page) -> bytes, in a fixed order

    @property
    def section_titles(self) -> list[str]:
        return [s.title for s in self.report.sections]


def build_report(ctx: ReportContext) -> Report:
    sections = []
    specs = registry()
    for k, spec in enumerate(specs):
        ctx.progress("sections", k, len(specs))
        section = spec.build(ctx)
        if section is not None:
            sections.append(section)
    ctx.progress("sections", len(specs), len(specs))
    stale = unhealthy_runs(ctx)
    if stale:  # first, so nobody reads a number without knowing which files changed under it
        sections.insert(0, Section("findings", "Findings", [Paragraph(
            "Not up to date — the numbers of these runs come from files changed after they were written, or from "
            "stale inputs: " + " · ".join(stale))]))
    subtitle = (f"kat {ctx.kat_version} · "
                f"{', '.join(s.title for s in sections) or 'nothing to report yet'}")
    return Report("kat report", subtitle, sections)


def render_report(report: Report, progress: ProgressFn = no_progress) -> BuiltReport:
    names = [f.name for f in report.figures]
    if len(set(names)) != len(names):
        raise ValueError(f"two figures share a file name: {names}")
    rendered = {}
    files: dict[str, bytes] = {}
    for k, fig in enumerate(report.figures):
        progress("figures", k, len(names))
        r = render(fig)
        rendered[fig.name] = r
        files[f"{fig.name}.png"] = r.png
        files[f"{fig.name}.pdf"] = r.pdf
    progress("figures", len(names), len(names))
    files[HTML_FILE] = to_html(report, rendered).encode("utf-8")
    files[MARKDOWN_FILE] = to_markdown(report).encode("utf-8")
    return BuiltReport(report, files)
