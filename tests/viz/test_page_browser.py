"""Acceptance: the page renders in headless Chromium, draws every point and makes no network request.

Skips cleanly when /usr/bin/chromium (Debian package `chromium`) is absent. Each Chromium run gets a fresh
profile and its own net-log; requests Chromium makes for itself (update checks) are told apart from the
page's by their initiator (see `vizkit.page_requests`), and a deliberately leaky page proves the check bites.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from vizkit import (  # noqa: F401  (chromium is a fixture)
    chromium,
    coloured_pixels,
    dom_attribute,
    make_embed_files,
    page_requests,
    read_png,
)

from katcli.viz.build import VizOptions, build_viz
from katcli.viz.page import render_page

pytestmark = pytest.mark.slow

N_PROMPTS, MAX_POINTS = 400, 300
HOSTILE = [
    '</script><script>document.title = "pwned"</script>',
    '<img src="http://127.0.0.1:9/evil.png"> and <link rel="stylesheet" href="https://fonts.example.invalid/x">',
    "<!-- unclosed comment & an ampersand \u2028 line separator",
]
# Right of the info panel (at most 452 px wide): what is coloured there is points, not controls or legend.
POINTS_REGION_X = 470
CONSOLE_PROBLEMS = re.compile(r"Uncaught|Refused|Content Security Policy|Error", re.I)


def _build(tmp_path: Path, **options) -> tuple[Path, dict]:
    texts = [f"Prompt {i}: what should I know about topic {i % 7}?" for i in range(N_PROMPTS)]
    for k, text in enumerate(HOSTILE):
        texts[10 * k + 1] = text
    files = make_embed_files(tmp_path / "ws", n=N_PROMPTS, d=24, texts=texts)
    built = build_viz(files.paths, VizOptions(max_points=MAX_POINTS, **options))
    page = tmp_path / "embeddings_3d.html"
    page.write_text(built.html_text, encoding="utf-8")
    return page, built.document


def test_page_draws_all_points_and_makes_no_network_request(tmp_path, chromium):
    page, doc = _build(tmp_path)
    assert doc["n_shown"] == MAX_POINTS

    run = chromium.dump_dom(page)
    assert dom_attribute(run.stdout, "data-points") == str(MAX_POINTS)  # the page's data
    assert dom_attribute(run.stdout, "data-drawn") == str(MAX_POINTS)  # painted in the first frame
    assert dom_attribute(run.stdout, "data-colour") == "weight"
    assert re.search(r"<title>(.*?)</title>", run.stdout).group(1) == f"kat viz · {MAX_POINTS} points"
    assert page_requests(run.netlog) == []
    assert [ln for ln in run.console_lines() if CONSOLE_PROBLEMS.search(ln)] == []

    shot = tmp_path / "shot.png"
    run = chromium.screenshot(page, shot)
    assert page_requests(run.netlog) == []
    drawn = coloured_pixels(read_png(shot), x_from=POINTS_REGION_X)

    # Control: the same page with no points leaves that region without a single coloured pixel.
    empty = tmp_path / "empty.html"
    empty.write_text(render_page(dict(doc, points=[], n_shown=0, sources={})), encoding="utf-8")
    chromium.screenshot(empty, tmp_path / "empty.png")
    assert coloured_pixels(read_png(tmp_path / "empty.png"), x_from=POINTS_REGION_X) == 0
    assert drawn > 1500, f"only {drawn} coloured pixels where the points should be"


def test_network_check_catches_a_page_that_fetches(tmp_path, chromium):
    leaky = tmp_path / "leaky.html"
    leaky.write_text(
        '<!DOCTYPE html><html><head><link rel="stylesheet" href="https://fonts.example.invalid/css"></head>'
        '<body><img src="http://127.0.0.1:9/x.png">'
        '<script>fetch("https://cdn.example.invalid/lib.js").catch(() => {});</script></body></html>',
        encoding="utf-8",
    )
    run = chromium.dump_dom(leaky)
    assert sorted(page_requests(run.netlog)) == [
        "http://127.0.0.1:9/x.png",
        "https://cdn.example.invalid/lib.js",
        "https://fonts.example.invalid/css",
    ]


# Drives the page like a user: hover a drawn point, drag to rotate, switch colours, untick a source.
# Injected only into a test copy of the page (whose CSP would otherwise, rightly, refuse a second script).
INTERACT = """
<script>
(function () {
  const body = document.body, canvas = document.getElementById("view");
  const snapshot = () => canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const before = snapshot();
  const left = Math.ceil(document.getElementById("info").getBoundingClientRect().right) + 2;
  let hit = null;
  for (let y = 0; y < canvas.height && !hit; y++) {
    for (let x = left; x < canvas.width; x++) {
      const k = 4 * (y * canvas.width + x);
      if (Math.max(before[k], before[k + 1], before[k + 2]) - Math.min(before[k], before[k + 1], before[k + 2]) > 60) {
        hit = [x + 1, y + 1]; break;
      }
    }
  }
  const at = (type, x, y, extra) => canvas.dispatchEvent(new PointerEvent(type, Object.assign(
    {clientX: x, clientY: y, bubbles: true, pointerId: 1, isPrimary: true}, extra || {})));
  at("pointermove", hit[0], hit[1]);
  const tip = document.getElementById("tooltip");
  body.dataset.tooltip = tip.style.display;
  body.dataset.tooltipText = tip.querySelector(".text").textContent;
  body.dataset.tooltipMeta = tip.querySelector(".meta").textContent;
  at("pointerdown", 500, 300, {button: 0, buttons: 1});
  at("pointermove", 560, 330, {buttons: 1});
  at("pointerup", 560, 330);
  document.querySelector('input[name="colour"][value="source"]').click();
  const drawnBefore = body.dataset.drawn;
  document.querySelector('#sources input[type="checkbox"]').click();
  // The redraw after the filter comes in an animation frame: wait for it (a loaded machine delays frames), then
  // read the canvas.
  let waited = 0;
  const finish = () => {
    if (body.dataset.drawn === drawnBefore && waited < 4000) { waited += 100; setTimeout(finish, 100); return; }
    const after = snapshot();
    let changed = 0;
    for (let k = 0; k < after.length; k += 4) if (after[k] !== before[k] || after[k + 2] !== before[k + 2]) changed++;
    body.dataset.changedPixels = String(changed);
    body.dataset.done = "yes";
  };
  setTimeout(finish, 500);
})();
</script>
"""


def test_hover_rotate_recolour_and_filter(tmp_path, chromium):
    page, doc = _build(tmp_path)
    html = page.read_text(encoding="utf-8")
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
    driven = tmp_path / "driven.html"
    driven.write_text(html.replace("</body>", INTERACT + "</body>"), encoding="utf-8")

    run = chromium.run(driven, "--dump-dom", "--virtual-time-budget=10000")
    dom = run.stdout
    assert [ln for ln in run.console_lines() if CONSOLE_PROBLEMS.search(ln)] == []
    assert dom_attribute(dom, "data-done") == "yes"
    assert dom_attribute(dom, "data-tooltip") == "block"
    texts = {p["text"] for p in doc["points"]}
    shown_text = dom_attribute(dom, "data-tooltip-text")
    assert shown_text and any(t.startswith(shown_text.replace("&amp;", "&")[:20]) for t in texts)
    assert "weight" in dom_attribute(dom, "data-tooltip-meta")
    first_source = sorted(doc["sources"])[0]
    assert dom_attribute(dom, "data-drawn") == str(MAX_POINTS - doc["sources"][first_source])
    assert dom_attribute(dom, "data-colour") == "source"
    assert int(dom_attribute(dom, "data-changed-pixels")) > 1000
    assert page_requests(run.netlog) == []


def test_initial_colour_comes_from_the_flag(tmp_path, chromium):
    page, _ = _build(tmp_path, color="density")
    run = chromium.dump_dom(page)
    assert dom_attribute(run.stdout, "data-colour") == "density"
    assert dom_attribute(run.stdout, "data-drawn") == str(MAX_POINTS)
