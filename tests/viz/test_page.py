"""The page is one self-contained file: inline data escaped safely, no external references, strict CSP."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from katcli.viz.page import render_page, script_json

HOSTILE = 'a </script><script>alert(1)</script> <!-- b --> & c > d \u2028 e \u2029 {{SCRIPT}} </SCRIPT >'
ASSETS = Path(__file__).resolve().parents[2] / "src" / "katcli" / "viz"


def _doc(text: str = HOSTILE, n: int = 3) -> dict:
    points = [
        {"id": f"p{i}", "x": i, "y": -i, "z": 0.5, "weight": 1 / n, "density": 1.0, "src": "hh-rlhf", "text": text}
        for i in range(n)
    ]
    return {
        "format": "kat-viz/1", "n_total": n, "n_shown": n, "n_rare_kept": 0, "max_points": 10, "seed": 0,
        "projection": {"method": "pca", "explained_variance_ratio": [0.5, 0.3, 0.1], "fitted_on": n, "params": {}},
        "density": {"kind": "relative", "eps": 0.001, "power": 1.0, "note": ""},
        "sources": {"hh-rlhf": n}, "points": points,
    }


class _Structure(HTMLParser):
    """Collects tags, attributes and script bodies as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[tuple[dict, str]] = []
        self._in_script: dict | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = dict(attrs)
            self.scripts.append((self._in_script, ""))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None

    def handle_data(self, data):
        if self._in_script is not None:
            attrs, body = self.scripts[-1]
            self.scripts[-1] = (attrs, body + data)


def _parse(page: str) -> _Structure:
    parser = _Structure()
    parser.feed(page)
    parser.close()
    return parser


def test_script_json_has_no_markup_characters_and_round_trips():
    text = script_json({"t": HOSTILE})
    assert not re.search("[<>&\u2028\u2029]", text)
    assert json.loads(text) == {"t": HOSTILE}


def test_hostile_prompt_text_stays_inside_its_data_block():
    page = render_page(_doc())
    parsed = _parse(page)
    kinds = [(a.get("type"), a.get("id")) for a, _ in parsed.scripts]
    assert kinds == [("application/json", "kat-data"), ("application/json", "kat-config"), (None, None)]
    data = json.loads(parsed.scripts[0][1])
    assert [p["text"] for p in data["points"]] == [HOSTILE] * 3
    assert json.loads(parsed.scripts[1][1]) == {"color": "weight"}
    # Placeholder-looking prompt text is left alone (single-pass templating): only the three copies remain.
    assert page.count("{{SCRIPT}}") == 3


def test_nothing_is_loaded_from_anywhere():
    page = render_page(_doc())
    parsed = _parse(page)
    for tag, attrs in parsed.tags:
        assert tag not in ("link", "img", "iframe", "object", "embed", "audio", "video", "source")
        assert not {"src", "href", "srcset", "action", "poster"} & set(attrs), (tag, attrs)
    outside_data = page.replace(parsed.scripts[0][1], "")
    assert "http:" not in outside_data and "https:" not in outside_data
    assert "@import" not in outside_data and "url(" not in outside_data


def test_csp_blocks_all_fetches_and_allows_exactly_the_renderer():
    page = render_page(_doc())
    parsed = _parse(page)
    metas = [a for t, a in parsed.tags if t == "meta"]
    csp = next(a["content"] for a in metas if a.get("http-equiv") == "Content-Security-Policy")
    renderer = parsed.scripts[2][1]
    digest = base64.b64encode(hashlib.sha256(renderer.encode("utf-8")).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    assert csp.startswith("default-src 'none';")
    assert renderer == (ASSETS / "page.js").read_text(encoding="utf-8")


def test_initial_colour_and_title():
    page = render_page(_doc(n=2), color="source")
    assert json.loads(_parse(page).scripts[1][1]) == {"color": "source"}
    assert "<title>kat viz · 2 points</title>" in page
    with pytest.raises(ValueError, match="unknown colour mode"):
        render_page(_doc(), color="rainbow")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_renderer_is_valid_javascript():
    subprocess.run(["node", "--check", str(ASSETS / "page.js")], check=True, capture_output=True)
