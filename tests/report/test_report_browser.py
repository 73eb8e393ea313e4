"""Acceptance: the report page, in headless Chromium, shows every figure and makes no network request.

Uses the viz tests' Chromium harness (vizkit: fresh profile and net-log per run; skips without /usr/bin/chromium)
and reportkit's `inspect_page`, which counts the images that decoded and those with ink. A copy with one figure
swapped for a blank image proves the blank check bites.
"""

from __future__ import annotations

import html as html_lib
import re

import pytest
from reportkit import CONSOLE_PROBLEMS, blank_png, inspect_page
from vizkit import chromium, page_requests  # noqa: F401  (chromium is a fixture)

pytestmark = pytest.mark.slow

FIGURES = ["density-weights", "rm-training", "rm-quintiles", "rm-sources"]  # in page order
def test_report_page_shows_every_figure_offline(kat, report_rm_ws, tmp_path, chromium):  # noqa: F811
    result = kat("report", "--out", "r-browser", "--threads", "1", "--device", "cpu", workspace=report_rm_ws)
    assert result.exit_code == 0, result.output
    page = report_rm_ws / "r-browser" / "report.html"
    html = page.read_text(encoding="utf-8")
    csp = html_lib.unescape(re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', html).group(1))
    assert csp.startswith("default-src 'none'; style-src 'sha256-")
    assert "<script" not in html and "http://" not in html and "https://" not in html

    run = chromium.dump_dom(page)
    assert page_requests(run.netlog) == []
    assert [ln for ln in run.console_lines() if CONSOLE_PROBLEMS.search(ln)] == []
    assert re.findall(r'<figure id="fig-([^"]+)"', run.stdout) == FIGURES

    seen = inspect_page(chromium, html, tmp_path / "inspect.html")
    assert seen == {"images": "4", "decoded": "4", "nonblank": "4", "figures": ",".join(f"fig-{n}" for n in FIGURES)}

    first = re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1)
    control = inspect_page(chromium, html.replace(first, blank_png(), 1), tmp_path / "control.html")
    assert (control["decoded"], control["nonblank"]) == ("4", "3")
