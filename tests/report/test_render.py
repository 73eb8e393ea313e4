"""The report's page, Markdown and figure files: a CSP that allows nothing external, escaping, reproducible bytes."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re

from katcli.report.document import Figure, Paragraph, Report, Section, table
from katcli.report.plotting import render
from katcli.report.render import STYLE, to_html, to_markdown

HOSTILE = '</style><script>alert(1)</script><img src="http://127.0.0.1:9/x.png">'


def _line(fig) -> None:
    ax = fig.add_subplot()
    ax.plot([1, 2, 3], [0.2, 0.5, 0.4], label="é run")
    ax.set_xscale("log")
    ax.legend()


FIG = Figure("demo", "Demo figure", "A line over 3 steps.", _line, table(["Step", "Value"], [["1", "0.2"]]))


def _report() -> Report:
    s = Section("demo", "Demo & co").add(Paragraph(HOSTILE), table(["Col|umn", "N"], [[HOSTILE, "1|2"]]), FIG)
    return Report("kat report", "subtitle", [s])


def test_page_allows_nothing_external_and_escapes_every_text():
    page = to_html(_report(), {"demo": render(FIG)})
    csp = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1))
    digest = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    assert csp == f"default-src 'none'; style-src 'sha256-{digest}'; img-src data:; base-uri 'none'; form-action 'none'"
    assert f"<style>{STYLE}</style>" in page  # the hashed text, byte for byte
    assert "<script" not in page and "http://" not in page.replace(html.escape(HOSTILE), "")
    assert page.count(html.escape(HOSTILE)) == 2
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 1
    assert '<a href="#demo">Demo &amp; co</a>' in page


def test_markdown_has_the_same_cells_and_refers_to_the_png():
    md = to_markdown(_report())
    assert "| Col\\|umn | N |\n| --- | ---: |\n" in md
    assert "| 1\\|2 |" in md
    assert "![Demo figure](demo.png)" in md and "PDF: `demo.pdf`" in md
    assert "*A line over 3 steps.*" in md


def test_figures_are_byte_identical_and_carry_no_time_or_version(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    a = render(FIG)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1900000000")
    b = render(FIG)
    assert (a.png, a.pdf) == (b.png, b.pdf)
    assert a.png.startswith(b"\x89PNG") and a.pdf.startswith(b"%PDF")
    for marker in (b"Software", b"tIME", b"atplotlib"):
        assert marker not in a.png
    for marker in (b"/CreationDate", b"/Producer", b"/Creator", b"atplotlib"):
        assert marker not in a.pdf
    assert b"/FontFile2" in a.pdf and b"/Type3" not in a.pdf  # embedded TrueType, as paper venues want
    # Control: matplotlib's own defaults do write them, so the checks above can fail.
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure()
    _line(fig)
    png, pdf = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png")
    fig.savefig(pdf, format="pdf")
    assert b"Software" in png.getvalue() and b"/CreationDate" in pdf.getvalue()
