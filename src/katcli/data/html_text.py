"""Stack Exchange HTML → readable plain text that keeps the structure a reward model can use.

- paragraphs, headings, horizontal rules and tables become blank-line separated blocks;
- `<ul>`/`<ol>` items become `- item` / `1. item` lines (nested lists indented two spaces a level);
- `<pre>` blocks become fenced code blocks with their whitespace untouched; inline `<code>` gets backticks;
- `<blockquote>` lines get a `> ` prefix; `<br>` is a line break; `<img>` keeps its alt text;
- entities and character references are decoded; whitespace elsewhere collapses as a browser would.

Malformed HTML never raises: unclosed tags are closed at the end and a stray `<` stays text. Tags are
found with one regular expression and handled in a tight loop rather than with `html.parser`, which is
several times slower — and Stack Exchange streams millions of answers. Most posts have a simple shape —
paragraphs, flat `<ul>`/`<ol>` lists whose items hold inline text (and `<p>`s), `<pre>` code blocks — and
a fast path takes those first: one regex pass splits the post at its block tags only, inline tags are
folded into the text between them with string operations, and Python visits a handful of block tags
instead of every tag. Anything else (nested lists, quotes, `<br>`, headings, tables, comments, a `<`
inside a tag ...) takes the general path. The fast path gives exactly what the general path gives, down
to its quirks; where those depend on context it gives up instead (a randomized test checks both).
Knows nothing about Stack Exchange rows or pairs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
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


def _names(names: Iterable[str]) -> str:
    """A regex matching any of `names` as a whole tag name in any ASCII case, the way `_TOKEN` reads names.

    Not `re.I`, under which "K" (Kelvin sign) and "ſ" would match k and s. Names that share a first letter
    are grouped under it, which keeps the per-`<` cost of a long list low.
    """
    by_first: dict[str, list[str]] = {}
    for n in sorted(names, key=len, reverse=True):
        by_first.setdefault(n[0], []).append(n[1:])

    def ci(text: str) -> str:
        return "".join(f"[{c}{c.upper()}]" for c in text)

    alts = []
    for first, rests in sorted(by_first.items()):
        tails = "|".join(ci(r) for r in rests)
        alts.append(ci(first) + (f"(?:{tails})" if len(rests) > 1 or rests[0] else ""))
    return r"(?:%s)\b" % "|".join(alts)


# The fast path splits a post at the block tags it handles (end slash, name, attributes), and requires every
# other "<" to open an inline or <code> tag. Tags with a "<" inside count as neither: so every tag it
# accepts is one that `_TOKEN` finds too, at the same place.
_BLOCK_TAG = re.compile(r"<(/?)(%s)([^<>]*)>" % _names({"p", "ul", "ol", "li", "pre"}))
_NOT_INLINE = re.compile(r"<(?!/?%s[^<>]*>)" % _names(_INLINE | {"code"}))
# Whitespace that the general path drops between list items (other Unicode spaces would be kept as text).
_GAP_CHARS = " \t\r\n\f\v\xa0"
_ANY_TAG = re.compile(r"<[^>]*>")
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
        t = _collapse(unescape(raw))
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
                alt = _collapse(unescape(next(g for g in found.groups() if g is not None))).strip()
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
        block = _code_block(self.pre or ())
        self.pre = None
        if block is None:
            return
        self.code_blocks.append(block)
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


def _code_block(pieces: Iterable[str]) -> str | None:
    """A fenced block of a <pre>'s decoded text pieces; None when it holds only whitespace."""
    code = "".join(pieces).strip("\n")
    if not code.strip():
        return None
    code = "\n".join(line.rstrip() for line in code.split("\n"))
    return f"```\n{code}\n```"


def _collapse(text: str) -> str:
    """`_WS.sub(" ", text)`, without the regex pass when there is nothing to collapse.

    Every character `_WS` matches except the plain space is non-printable, so printable text with no
    double space has no run to collapse.
    """
    if text.isprintable() and "  " not in text:
        return text
    return _WS.sub(" ", text)


def _inline_text(chunk: str) -> str | None:
    """Text of inline content: `<code>` → backtick, other tags dropped, spaces collapsed.

    None when a "<" in it opens no inline or <code> tag (or one with a "<" inside).
    """
    if "<" in chunk:
        text = chunk.replace("<code>", "`").replace("</code>", "`")  # the usual tags, told without a regex
        if "<" in text:
            if _NOT_INLINE.search(chunk):
                return None
            text = _ANY_TAG.sub("", _CODE_TAG.sub("`", chunk))
        chunk = text
    return _collapse(unescape(chunk)).strip(" ")


def _simple_blocks(html: str) -> str | None:
    """Paragraphs, flat lists and code blocks, visiting only block tags; None when `html` is not that simple.

    What the general path does with these shapes, block by block: at the top level every block tag breaks
    with a blank line, so each non-empty text between block tags is a paragraph; a list item is its marker
    and its texts (split by <p>, which breaks with one newline inside a list) on lines of their own; a
    <pre> is a fenced block of its decoded text, with <code> tags only splitting it. Shapes whose output
    depends on more context give up (None) instead: an empty list item (its marker swallows the next
    break), a <p> inside <pre> or between list items, text between list items, a self-closing block tag,
    a NUL (the general path's code-block placeholder), and any tag or "<" of another kind.
    """
    if "\x00" in html:
        return None
    parts = _BLOCK_TAG.split(html)  # text, end slash, name, attributes, text, ...
    out: list[str] = []
    items: list[str] | None = None  # inside a list: its finished items
    item: list[str] | None = None  # inside a list item: its texts
    pre: str | None = None  # inside a <pre>: its raw content
    ordered = False
    last = len(parts) - 1
    for i in range(0, len(parts), 4):
        chunk = parts[i]
        if chunk:
            if pre is not None:
                if "<" in chunk and _NOT_INLINE.search(chunk):
                    return None
                pre = chunk  # the only text in a <pre>: any other block tag in it gives up below
            elif items is not None and item is None:
                if chunk.strip(_GAP_CHARS):
                    return None
            else:
                t = _inline_text(chunk)
                if t is None:
                    return None  # a "<" that opens no tag this path knows
                if t:
                    (out if item is None else item).append(t)
        if i == last:
            break
        closing, name = parts[i + 1], parts[i + 2].lower()
        if name == "p":
            if pre is not None or (items is not None and item is None):
                return None
            continue  # a paragraph break: the texts around it are already separate
        if not closing and parts[i + 3].endswith("/"):
            return None
        if pre is not None:
            if not (closing and name == "pre"):
                return None
            block = _code_block(
                unescape(_ANY_TAG.sub("", piece) if "<" in piece else piece) for piece in _CODE_TAG.split(pre)
            )
            if block is not None:
                out.append(block)
            pre = None
        elif item is not None:
            if not (closing and name == "li") or not item:
                return None
            items.append((f"{len(items) + 1}. " if ordered else "- ") + "\n".join(item))
            item = None
        elif items is not None:
            if name == "li" and not closing:
                item = []
            elif closing and name in ("ul", "ol"):
                if items:
                    out.append("\n".join(items))
                items = None
            else:
                return None
        elif closing or name == "li":
            return None
        elif name == "pre":
            pre = ""
        else:
            items, ordered = [], name == "ol"
    if items is not None or pre is not None:
        return None
    return "\n\n".join(out).strip()


def html_to_text(html: str) -> str:
    """Readable text of an HTML fragment (see the module docstring for what is kept)."""
    if "\x00" in html:
        # NUL marks code-block placeholders internally; browsers replace it with U+FFFD, and so do we.
        html = html.replace("\x00", "\ufffd")
    if "<" not in html:
        return _tidy(_collapse(unescape(html)))
    text = _simple_blocks(html)
    return text if text is not None else _general(html)


def _general(html: str) -> str:
    html = html.replace("\x00", "\ufffd")  # NUL would collide with the code-block placeholders
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
