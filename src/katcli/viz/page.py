"""Build the self-contained viz page: one HTML file with the renderer and the data inline.

The template (`page.html`) and the renderer (`page.js`) ship as package data. The page must open anywhere,
offline, and must never reach the network, so:

- the script, styles and data are inlined — no `src`/`href` to anything, system fonts only;
- a Content-Security-Policy forbids every fetch (`default-src 'none'`) and allows exactly one script, the
  renderer, by its sha256 — even text that escaped its JSON block could not run or load anything;
- the data sits in `<script type="application/json">` blocks with `<`, `>`, `&` and U+2028/U+2029 written as
  `\\uXXXX` escapes, so prompt text such as `</script>` or `<!--` cannot end the block early; JSON.parse
  turns the escapes back into the original characters.

Substitution is a single pass over the template, so inserted text is never re-scanned for placeholders.
This module knows nothing about embeddings, projections or the workspace; it turns a document into HTML.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from importlib import resources
from typing import Any, Mapping

COLOR_MODES = ("weight", "density", "source")
_PLACEHOLDER = re.compile(r"\{\{(CSP|TITLE|DATA|CONFIG|SCRIPT)\}\}")
_SCRIPT_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_SCRIPT_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def _asset(name: str) -> str:
    return resources.files("katcli.viz").joinpath(name).read_text(encoding="utf-8")


def script_json(value: Any) -> str:
    """JSON that is safe inside an HTML `<script>` element and parses back to `value`.

    `<`, `>` and `&` can only occur inside JSON strings, where `\\u003c` etc. are equivalent escapes; U+2028 and
    U+2029 are escaped too so the text is also valid as a JavaScript literal.
    """
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _SCRIPT_ESCAPE_RE.sub(lambda m: _SCRIPT_ESCAPES[m.group(0)], text)


def _check_inline_script(source: str) -> None:
    # The renderer is ours, but a stray "</script" or "<!--" in it would silently break the page.
    lowered = source.lower()
    for bad in ("</script", "<!--", "<script"):
        if bad in lowered:
            raise ValueError(f"page.js must not contain {bad!r}: it is inlined into a <script> element")


def source_hash(text: str) -> str:
    """The CSP source expression that allows exactly this inline script or stylesheet text."""
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    return f"'sha256-{digest}'"


def offline_csp(*, script: str | None = None, style: str | None = None) -> str:
    """A policy under which a page can fetch nothing: images only from `data:`, no script but `script`, and
    inline styles either exactly `style` (by hash) or, when it is not given, any inline style."""
    parts = ["default-src 'none'"]
    if script is not None:
        parts.append(f"script-src {source_hash(script)}")
    styles = source_hash(style) if style is not None else "'unsafe-inline'"
    parts.append(f"style-src {styles}")
    parts += ["img-src data:", "base-uri 'none'", "form-action 'none'"]
    return "; ".join(parts)


def render_page(document: Mapping[str, Any], *, color: str = "weight", title: str | None = None) -> str:
    """The complete HTML page for a viz document (see `katcli.viz.points`), opening in colour mode `color`."""
    if color not in COLOR_MODES:
        raise ValueError(f"unknown colour mode {color!r}; expected one of {', '.join(COLOR_MODES)}")
    script = _asset("page.js")
    _check_inline_script(script)
    if title is None:
        title = f"kat viz · {len(document.get('points', []))} points"
    values = {
        "CSP": html.escape(offline_csp(script=script), quote=True),
        "TITLE": html.escape(title, quote=False),
        "DATA": script_json(document),
        "CONFIG": script_json({"color": color}),
        "SCRIPT": script,
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], _asset("page.html"))
