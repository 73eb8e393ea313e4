"""A `Report` as one self-contained HTML page and as Markdown, from the same formatted cells.

The page must open anywhere, offline, and never reach the network: figures are inline `data:` PNGs, the one
stylesheet is inline, there is no script at all, and a Content-Security-Policy forbids everything else
(`default-src 'none'`; images only from `data:`, the stylesheet only by its sha256; the viz page's policy
builder). Every text is HTML-escaped.
The Markdown file refers to the PNGs written beside it. Output depends only on the report, so equal reports give
equal bytes. This module knows layout, not what any section computes, and draws nothing itself (it is handed the
rendered figures).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping

from katcli.report.document import Figure, Paragraph, Report, Table
from katcli.report.plotting import Rendered
from katcli.viz.page import offline_csp

STYLE = """
  body { margin: 0 auto; max-width: 980px; padding: 24px 28px 64px; color: #1d2330; background: #fff;
    font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
  h1 { font-size: 24px; margin: 0 0 4px; }
  h2 { font-size: 19px; margin: 36px 0 8px; padding-top: 8px; border-top: 1px solid #d8dce5; }
  h3 { font-size: 15px; margin: 20px 0 6px; }
  .sub, figcaption, .files { color: #5a6275; }
  nav a { margin-right: 14px; }
  figure { margin: 16px 0 28px; }
  figure img { display: block; max-width: 100%; height: auto; border: 1px solid #eceef3; }
  figcaption { margin: 6px 0 8px; font-style: italic; }
  table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
  th, td { border-bottom: 1px solid #e3e6ed; padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
  th { font-weight: 600; border-bottom: 2px solid #c9ced9; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  code { font-size: 12px; }
  .files { font-size: 12px; }
"""


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _html_table(t: Table) -> str:
    def cls(k: int) -> str:
        return ' class="num"' if t.is_numeric(k) else ""

    head = "".join(f"<th{cls(k)}>{_esc(c)}</th>" for k, c in enumerate(t.columns))
    body = "\n".join(
        "<tr>" + "".join(f"<td{cls(k)}>{_esc(c)}</td>" for k, c in enumerate(row)) + "</tr>" for row in t.rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _html_figure(f: Figure, r: Rendered) -> str:
    data = base64.b64encode(r.png).decode("ascii")
    return (
        f'<figure id="fig-{_esc(f.name)}">\n<h3>{_esc(f.title)}</h3>\n'
        f'<img src="data:image/png;base64,{data}" width="{r.width}" height="{r.height}" alt="{_esc(f.title)}">\n'
        f"<figcaption>{_esc(f.caption)}</figcaption>\n{_html_table(f.table)}\n"
        f'<p class="files">Also beside this page: <code>{_esc(f.name)}.png</code>, '
        f"<code>{_esc(f.name)}.pdf</code></p>\n</figure>"
    )


def to_html(report: Report, rendered: Mapping[str, Rendered]) -> str:
    """The whole page; `rendered` maps each figure's name to its PNG."""
    parts: list[str] = []
    for s in report.sections:
        parts.append(f'<section id="{_esc(s.key)}">\n<h2>{_esc(s.title)}</h2>')
        for b in s.blocks:
            if isinstance(b, Paragraph):
                parts.append(f"<p>{_esc(b.text)}</p>")
            elif isinstance(b, Table):
                parts.append(_html_table(b))
            else:
                parts.append(_html_figure(b, rendered[b.name]))
        parts.append("</section>")
    nav = " ".join(f'<a href="#{_esc(s.key)}">{_esc(s.title)}</a>' for s in report.sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_esc(offline_csp(style=STYLE))}">\n'
        '<meta name="generator" content="kat report">\n'
        f"<title>{_esc(report.title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f'<header>\n<h1>{_esc(report.title)}</h1>\n<p class="sub">{_esc(report.subtitle)}</p>\n'
        f"<nav>{nav}</nav>\n</header>\n" + "\n".join(parts) + "\n</body>\n</html>\n"
    )


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(t: Table) -> str:
    lines = ["| " + " | ".join(_md_cell(c) for c in t.columns) + " |"]
    lines.append("|" + "".join(" ---: |" if t.is_numeric(k) else " --- |" for k in range(len(t.columns))))
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines)


def to_markdown(report: Report) -> str:
    out = [f"# {report.title}", "", report.subtitle, ""]
    for s in report.sections:
        out += [f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, Paragraph):
                out += [b.text, ""]
            elif isinstance(b, Table):
                out += [_md_table(b), ""]
            else:
                out += [f"### {b.title}", "", f"![{_md_cell(b.title)}]({b.name}.png)", "", f"*{b.caption}*", "",
                        _md_table(b.table), "", f"PDF: `{b.name}.pdf`", ""]
    return "\n".join(out).rstrip("\n") + "\n"
