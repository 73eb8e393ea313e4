"""The simple-blocks fast path of html_text: exactly the general path's output, or it gives up.

`_general` is the reference. Random documents are built mostly from the shapes the fast path takes
(paragraphs, flat lists, code blocks) with a few defects mixed in, so both outcomes are exercised.
"""

from __future__ import annotations

import random

import pytest

from katcli.data import html_text as T
from katcli.data.html_text import html_to_text

TEXT = ["word", "two  words", " ", "\n", "\t", "&amp;", "&lt;b&gt;", "&nbsp;", "&#10;", "&emsp;", "\xa0",
        "\u2003", "é", "`", "x = 1", "&times;", "&am", "p;"]
INLINE = ["code", "CODE", "a", "em", "strong", "kbd", "span"]
ATTRS = ["", "", ' href="http://x.example/y"', " class=x", "/"]
GAP = ["", "", "\n", " ", "\n\n", "\xa0"]
DEFECTS = ["<br>", "<hr>", "<blockquote>q</blockquote>", "<h2>h</h2>", "<!-- c -->", "a < b", "\x00", "<p <b>x",
           "<li>stray</li>", "</ul>", "<ul/>", "<pre/>", "<img alt='i'>", "<\u212abd>k</\u212abd>", "<İ>"]


def inline(rng: random.Random, p_tags: bool) -> str:
    out = []
    for _ in range(rng.randint(0, 6)):
        r = rng.random()
        if r < 0.55:
            out.append(rng.choice(TEXT))
        elif r < 0.9:
            tag, attrs = rng.choice(INLINE), rng.choice(ATTRS)
            out.append(f"<{tag}{attrs}>" if rng.random() < 0.5 else f"</{tag}>")
        else:
            out.append(rng.choice(["<p>", "</p>", "<P class='x'>", "<p/>"]) if p_tags else rng.choice(TEXT))
    return "".join(out)


def block(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.35:
        return rng.choice(["<p>", "<P>", "<p class='q'>", ""]) + inline(rng, False) + rng.choice(["</p>", "</P >", ""])
    if r < 0.7:
        kind = rng.choice(["ul", "ol", "UL", "Ol"])
        items = "".join(
            rng.choice(GAP) + rng.choice(["<li>", "<li>", "<LI value='3'>"]) + inline(rng, True)
            + rng.choice(["</li>"] * 12 + ["", "<ul><li>nested</li></ul></li>", "</li>x"])
            for _ in range(rng.randint(0, 4))
        )
        return f"<{kind}{rng.choice(['', '', ' start=3'])}>" + items + rng.choice(GAP) + f"</{kind}>"
    if r < 0.95:
        code = "".join(rng.choice(["def f():\n", "    return 1  \n", "&lt;x&gt;", "\n", "  ", "\t", "x\n\n\n\ny",
                                   "<code>", "</code>", "<code class='c'>", "<b>", "&amp"])
                       for _ in range(rng.randint(0, 6)))
        return rng.choice(["<pre>", '<pre class="lang-py">', "<PRE>"]) + code + rng.choice(["</pre>", "</PRE>", ""])
    return rng.choice(DEFECTS)


def document(rng: random.Random) -> str:
    return "".join(rng.choice(GAP) + block(rng) for _ in range(rng.randint(1, 6))) + rng.choice(GAP)


def test_fast_path_equals_the_general_path_on_random_block_documents():
    rng = random.Random(3)
    taken = 0
    for _ in range(4000):
        doc = document(rng)
        fast = T._simple_blocks(doc)
        if fast is not None:
            assert fast == T._general(doc), doc
            taken += 1
        assert html_to_text(doc) == T._general(doc), doc
    assert 1000 < taken < 3900  # both outcomes are exercised


def test_fast_path_keeps_lists_code_blocks_and_paragraph_breaks_in_items():
    html = (
        "<p>Try <code>ls -l</code>:</p>\n<ol start='2'>\n<li>first <em>step</em></li>\n"
        "<li><p>second</p><p>more</p></li></ol>\n"
        '<pre class="lang-sh"><code>$ ls  -l\n  x &amp;&amp; y   \n</code></pre>\n<ul><li>a</li></ul>'
    )
    expected = "Try `ls -l`:\n\n1. first step\n2. second\nmore\n\n```\n$ ls  -l\n  x && y\n```\n\n- a"
    assert T._simple_blocks(html) == expected == T._general(html)


@pytest.mark.parametrize(
    "html",
    [
        "<ul><li></li><li>b</li></ul>",  # an empty item: its marker swallows the next break ("- - b")
        "<ul><li>a<ul><li>b</li></ul></li></ul>",  # nested list
        "<ul>x<li>a</li></ul>",  # text between items
        "<ul><li>a</li><p>x</p></ul>",  # a paragraph between items
        "<ul/><li>a</li>",  # a self-closing block tag
        "<pre>a<p>b</pre>",  # a block tag inside <pre>
        "<pre>x</pre>\x000\x00",  # a NUL: the general path's code-block placeholder
        "<p>a<br>b</p>",  # a tag of another kind
        "<p>a < b</p>",  # a "<" that opens no tag
        "<p title='<'>a</p>",  # a "<" inside a tag
        "<\u212abd>x",  # not a tag for the general path ("K" is the Kelvin sign)
    ],
)
def test_fast_path_gives_up_where_the_general_path_depends_on_more_context(html):
    assert T._simple_blocks(html) is None


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>&emsp;Indented</p>", "Indented"),  # the general path's final strip() drops Unicode spaces too
        ("<p>a</p><p>b\u2003</p>", "a\n\nb"),
        ("<p>a\u2003</p><p>b</p>", "a\u2003\n\nb"),
        ("<\u212abd>x</\u212abd>", "<\u212abd>x</\u212abd>"),  # no tag: kept as text
    ],
)
def test_html_to_text_agrees_with_the_general_path_at_the_edges(html, expected):
    assert html_to_text(html) == expected == T._general(html)


def test_nul_characters_become_replacement_characters_not_a_crash():
    from katcli.data.html_text import html_to_text

    assert html_to_text("<pre>x</pre>\x009\x00") == "```\nx\n```\n\n\ufffd9\ufffd"
    assert html_to_text("<p>a\x00b</p>") == "a\ufffdb"
