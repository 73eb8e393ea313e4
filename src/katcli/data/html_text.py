"""Stack Exchange HTML → readable plain text that keeps the structure a reward model can use.

- paragraphs, headings, horizontal rules and tables become blank-line separated blocks;
- `<ul>`/`<ol>` items become `- item` / `1. item` lines (nested lists indented two spaces a level);
- `<pre>` blocks become fenced code blocks with their whitespace untouched; inline `<code>` gets backticks;
- `<blockquote>` lines get a `> ` prefix; `<br>` is a line break; `<img>` keeps its alt text;
- entities and character references are decoded; whitespace elsewhere collapses as a browser would.

Malformed HTML never raises: unclosed tags are closed at the end and a stray `<` stays text. Tags are
found with one regular expression and handled in a tight loop rather than with `html.parser`, which is
several times slower — and Stack Exchange streams millions of answers. Knows nothing about Stack
Exchange rows or pairs.
"""

from __future__ import annotations

import re
from html import unescape

_BLOCK = frozenset({
    "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table", "section", "article", "header",
    "footer", "dl", "figure", "details", "summary", "center", "form",
})
_LINE = frozenset({"tr", "dt", "dd", "caption", "figcaption"})
# Tags that only style text: dropped, their text kept.
_INLINE = frozenset({
    "a", "em", "strong", "b", "i", "u", "s", "span", "strike", "del", "ins", "sup", "sub", "kbd", "small", "big",
    "abbr", "cite", "q", "var", "samp", "mark", "font", "tt", "dfn", "time", "bdi", "bdo", "wbr", "nobr",
})
# Searched in the lower-cased document: a "<" that does not start a <p>, <code> or inline tag.
_NOT_SIMPLE = re.compile(
    r"<(?!/?(?:%s)\b[^<>]*>)" % "|".join(sorted(_INLINE | {"p", "code"}, key=len, reverse=True))
)
_ANY_TAG = re.compile(r"<[^>]*>")
_P_TAG = re.compile(r"</?[pP]\b[^>]*>")
_CODE_TAG = re.compile(r"</?[cC][oO][dD][eE]\b[^>]*>")
_SKIP = frozenset({"script", "style", "head", "title", "noscript", "template"})
# Whitespace runs that are not already a single space (leaving single spaces alone is much faster).
_WS = re.compile(r"[\t\r\n\f\v\xa0][ \t\r\n\f\v\xa0]*| [ \t\r\n\f\v\xa0]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_CODE_SLOT_RE = re.compile(r"\x00(\d+)\x00")
# split() yields: text, end-slash, tag name, attributes, self-closing slash, text, ...; comments and
# declarations match with every group None.
_TOKEN = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)\b([^>]*?)(/?)>|<!--.*?(?:-->|\Z)|<[!?][^>]*>", re.S)
_ALT = re.compile(r"""\balt\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I)


class _Buffer:
    """Text of one nesting level (the document, or an open <blockquote>)."""

    __slots__ = ("parts", "nl", "filled")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.nl = 0  # trailing newlines
        self.filled = False  # holds anything but whitespace yet


class _Builder:
    def __init__(self) -> None:
        self.buf = _Buffer()
        self.quotes: list[_Buffer] = []  # enclosing buffers of open <blockquote>s
        self.lists: list[list[int]] = []  # per open list: [next number], 0 for bullets
        self.space = True  # the text so far ends in whitespace: strip the next text's leading space
        self.item_start = False  # just wrote a list marker: a <p> inside <li> must not break the line
        self.pre: list[str] | None = None
        self.pre_depth = 0
        self.skip_depth = 0
        self.code_blocks: list[str] = []

    # -- output ------------------------------------------------------------------------------
    def put(self, text: str) -> None:
        b = self.buf
        b.parts.append(text)
        b.filled = True
        b.nl = 0
        self.space = text.endswith(" ")
        self.item_start = False

    def brk(self, n: int) -> None:
        """End the current buffer with at least `n` newlines (never at its start, never after a marker)."""
        b = self.buf
        if not b.filled or self.item_start:
            return
        if b.nl < n:
            if b.nl == 0 and self.space and b.parts:
                b.parts[-1] = b.parts[-1].rstrip(" ")
            b.parts.append("\n" * (n - b.nl))
            b.nl = n
        self.space = True

    def text(self, raw: str) -> None:
        if self.skip_depth or not raw:
            return
        if self.pre is not None:
            self.pre.append(unescape(raw))
            return
        t = _WS.sub(" ", unescape(raw))
        if self.space:
            t = t.lstrip(" ")
        if t:
            self.put(t)

    # -- tags --------------------------------------------------------------------------------
    def start(self, tag: str, attrs: str, self_closing: bool) -> None:
        # Inline tags (and <code>'s backticks outside <pre>) never get here: html_to_text folds them into text.
        if tag in _SKIP:
            if not self_closing:
                self.skip_depth += 1
            return
        if self.skip_depth:
            return
        if self.pre is not None:
            if tag == "pre":
                self.pre_depth += 1
            elif tag == "br":
                self.pre.append("\n")
            return
        if tag == "br":
            if self.buf.nl == 0:
                self.brk(1)
            else:
                self.put_newline()
        elif tag in _BLOCK:
            self.brk(1 if self.lists else 2)
        elif tag == "li":
            self.brk(1)
            depth = max(len(self.lists) - 1, 0)
            marker = "- "
            if self.lists and self.lists[-1][0]:
                marker = f"{self.lists[-1][0]}. "
                self.lists[-1][0] += 1
            self.put("  " * depth + marker)
            self.space = True
            self.item_start = True
        elif tag == "pre":
            self.item_start = False  # a code block inside a list item still starts on its own line
            self.brk(2)
            self.pre = []
            self.pre_depth = 1
        elif tag in ("ul", "ol"):
            self.brk(1 if self.lists else 2)
            self.lists.append([1 if tag == "ol" else 0])
        elif tag in _LINE:
            self.brk(1)
        elif tag in ("td", "th"):
            if self.buf.nl == 0 and self.buf.filled:
                self.put(" | ")
                self.space = True
        elif tag == "blockquote":
            self.brk(2)
            self.quotes.append(self.buf)
            self.buf = _Buffer()
            self.space = True
        elif tag == "hr":
            self.brk(2)
            self.put("---")
            self.brk(2)
        elif tag == "img":
            found = _ALT.search(attrs)
            if found:
                alt = _WS.sub(" ", unescape(next(g for g in found.groups() if g is not None))).strip()
                if alt:
                    self.put(f"[{alt}]")

    def put_newline(self) -> None:
        # A second <br> in a row: an intentional blank line, kept (at most two newlines survive tidy).
        b = self.buf
        b.parts.append("\n")
        b.nl += 1

    def end(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(self.skip_depth - 1, 0)
            return
        if self.skip_depth:
            return
        if self.pre is not None:
            if tag == "pre":
                self.pre_depth -= 1
                if self.pre_depth == 0:
                    self.close_pre()
            return
        if tag in _BLOCK:
            self.brk(1 if self.lists else 2)
        elif tag == "li" or tag in _LINE:
            self.brk(1)
        elif tag in ("ul", "ol"):
            if self.lists:
                self.lists.pop()
            self.item_start = False
            self.brk(1 if self.lists else 2)
        elif tag == "blockquote":
            self.close_quote()

    # -- block closers -----------------------------------------------------------------------
    def close_pre(self) -> None:
        code = "".join(self.pre or ()).strip("\n")
        self.pre = None
        if not code.strip():
            return
        code = "\n".join(line.rstrip() for line in code.split("\n"))
        self.code_blocks.append(f"```\n{code}\n```")
        self.put(f"\x00{len(self.code_blocks) - 1}\x00")
        self.brk(2)

    def close_quote(self) -> None:
        if not self.quotes:
            return
        inner = _tidy("".join(self.buf.parts))
        self.buf = self.quotes.pop()
        self.space = True
        if inner:
            self.brk(2)
            self.put("\n".join(f"> {line}" if line else ">" for line in inner.split("\n")))
            self.brk(2)

    def finish(self) -> str:
        if self.pre is not None:
            self.close_pre()
        while self.quotes:
            self.close_quote()
        text = _tidy("".join(self.buf.parts))
        if not self.code_blocks:
            return text
        blocks = self.code_blocks
        return _CODE_SLOT_RE.sub(lambda m: blocks[int(m.group(1))], text)


def _tidy(text: str) -> str:
    if " \n" in text:
        text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _MANY_NEWLINES.sub("\n\n", text).strip()


def _paragraphs_only(html: str) -> str:
    """The common case — paragraphs of text with inline tags only — with a few C-level regex passes.

    Gives exactly what the general path gives for such input (a test checks this on random documents).
    """
    out = []
    for chunk in _P_TAG.split(html):
        if "<" in chunk:  # only <code> and inline tags can be left here
            chunk = _ANY_TAG.sub("", _CODE_TAG.sub("`", chunk))
        text = _WS.sub(" ", unescape(chunk)).strip(" ")
        if text:
            out.append(text)
    return "\n\n".join(out)


def _is_paragraphs_only(html: str) -> bool:
    """Every "<" opens a <p>, <code> or inline tag (so nothing needs the general path)."""
    return _NOT_SIMPLE.search(html.lower()) is None


def html_to_text(html: str) -> str:
    """Readable text of an HTML fragment (see the module docstring for what is kept)."""
    if "<" not in html:
        return _tidy(_WS.sub(" ", unescape(html)))
    if _is_paragraphs_only(html):
        return _paragraphs_only(html)
    return _general(html)


def _general(html: str) -> str:
    b = _Builder()
    text, start, end, inline = b.text, b.start, b.end, _INLINE  # locals: this loop is the hot path
    parts = _TOKEN.split(html)
    # Text between tags that change nothing (<a>, <em>, inline <code>'s backticks ...) is gathered and
    # handled in one call: most Stack Exchange tags are inline, and per-call overhead dominates.
    pending = [parts[0]]
    for i in range(1, len(parts), 5):
        name = parts[i + 1]
        if name is not None:
            tag = name.lower()
            if tag in inline:
                pass
            elif tag == "code" and b.pre is None and not b.skip_depth:
                pending.append("`")
            else:
                if len(pending) > 1 or pending[0]:
                    text("".join(pending))
                pending = []
                if parts[i]:
                    end(tag)
                else:
                    closing = bool(parts[i + 3])
                    start(tag, parts[i + 2], closing)
                    if closing and tag in ("pre", "blockquote", "ul", "ol"):
                        end(tag)
        pending.append(parts[i + 4])
    text("".join(pending))
    return b.finish()
