"""Acceptance: the report page, in headless Chromium, shows every figure and makes no network request.

Uses the viz tests' Chromium harness (vizkit: fresh profile and net-log per run; skips without /usr/bin/chromium).
The page itself carries no script; to look at its images a test copy gets one injected (its CSP, which rightly
refuses scripts, removed), which counts the images that decoded and those with any non-white pixel. A copy with
one figure swapped for a blank image proves the blank check bites.
"""

from __future__ import annotations

import base64
import html as html_lib
import re

import pytest
from vizkit import chromium, dom_attribute, page_requests  # noqa: F401  (chromium is a fixture)

pytestmark = pytest.mark.slow

FIGURES = ["density-weights", "rm-training", "rm-quintiles", "rm-sources"]  # in page order
CONSOLE_PROBLEMS = re.compile(r"Uncaught|Refused|Content Security Policy|Error", re.I)
INSPECT = """
<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  let decoded = 0, nonblank = 0;
  for (const img of imgs) {
    if (!img.complete || img.naturalWidth === 0) continue;
    decoded++;
    const c = document.createElement("canvas");
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0);
    const px = g.getImageData(0, 0, c.width, c.height).data;
    let ink = 0;
    for (let k = 0; k < px.length; k += 4) if (px[k] < 200 || px[k + 1] < 200 || px[k + 2] < 200) ink++;
    if (ink > 500) nonblank++;
  }
  document.body.dataset.images = String(imgs.length);
  document.body.dataset.decoded = String(decoded);
  document.body.dataset.nonblank = String(nonblank);
  document.body.dataset.figures = Array.from(document.querySelectorAll("figure")).map(f => f.id).join(",");
});
</script>
"""


def _blank_png() -> str:
    from katcli.report.document import Figure, table
    from katcli.report.plotting import render

    png = render(Figure("blank", "blank", "", lambda fig: None, table(["a"], []), size=(2, 1))).png
    return base64.b64encode(png).decode("ascii")


def _inspect(chromium, page: str, path) -> dict[str, str | None]:  # noqa: F811
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    path.write_text(page.replace("</body>", INSPECT + "</body>"), encoding="utf-8")
    run = chromium.run(path, "--dump-dom", "--virtual-time-budget=5000")
    return {k: dom_attribute(run.stdout, f"data-{k}") for k in ("images", "decoded", "nonblank", "figures")}


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

    seen = _inspect(chromium, html, tmp_path / "inspect.html")
    assert seen == {"images": "4", "decoded": "4", "nonblank": "4", "figures": ",".join(f"fig-{n}" for n in FIGURES)}

    first = re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1)
    control = _inspect(chromium, html.replace(first, _blank_png(), 1), tmp_path / "control.html")
    assert (control["decoded"], control["nonblank"]) == ("4", "3")
