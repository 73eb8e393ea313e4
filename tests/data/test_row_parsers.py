"""Prefix ids, HTML → text, UltraFeedback rows and Stack Exchange questions."""

from __future__ import annotations

import hashlib

import pytest

from katcli.data import stackexchange as SE
from katcli.data import ultrafeedback as UF
from katcli.data.html_text import html_to_text
from katcli.data.keys import TEST_PERCENT, derived_split, normalize_for_key, prefix_id
from katcli.data.schema import Drop


# -- keys ------------------------------------------------------------------------------------------------
def test_prefix_id_is_md5_of_the_whitespace_normalised_first_user_message():
    msgs = [{"role": "user", "content": "  Hello\n\n  world\t!  "}, {"role": "assistant", "content": "x"},
            {"role": "user", "content": "later turns do not count"}]
    assert normalize_for_key(msgs[0]["content"]) == "Hello world !"
    assert prefix_id(msgs) == hashlib.md5(b"Hello world !").hexdigest()[:16]
    assert prefix_id([{"role": "user", "content": "Hello world !"}]) == prefix_id(msgs)
    assert prefix_id([{"role": "user", "content": "Hello world!"}]) != prefix_id(msgs)


def test_derived_split_is_stable_and_about_five_percent_test():
    ids = [hashlib.md5(str(i).encode()).hexdigest()[:16] for i in range(20000)]
    tests = sum(derived_split(i) == "test" for i in ids)
    assert abs(tests / len(ids) - TEST_PERCENT / 100) < 0.01
    assert [derived_split(i) for i in ids[:50]] == [derived_split(i) for i in ids[:50]]


# -- HTML ------------------------------------------------------------------------------------------------
def test_html_keeps_paragraphs_lists_code_and_decodes_entities():
    html = (
        "<p>I get <code>x &lt; y</code> &amp; more:</p>"
        "<pre><code>def f():\n    return 1  # keep   spacing\n</code></pre>"
        "<ul><li>one</li><li>two <em>words</em></li></ul>"
        "<ol><li>first</li><li>second<ul><li>nested</li></ul></li></ol>"
        "<blockquote><p>quoted</p></blockquote><p>a<br>b &nbsp;&#39;c&#39; &mdash; d</p>"
    )
    assert html_to_text(html) == (
        "I get `x < y` & more:\n\n"
        "```\ndef f():\n    return 1  # keep   spacing\n```\n\n"
        "- one\n- two words\n\n"
        "1. first\n2. second\n  - nested\n\n"
        "> quoted\n\n"
        "a\nb 'c' — d"
    )


def test_html_survives_malformed_input():
    assert html_to_text("<p>unclosed <b>bold <pre>code") == "unclosed bold\n\n```\ncode\n```"
    assert html_to_text("a < b and c > d") == "a < b and c > d"
    assert html_to_text("<p>x</p><!-- hidden <p>no</p> --><script>alert(1)</script><p>y</p>") == "x\n\ny"
    assert html_to_text('<img src="a.png" alt="a diagram"> text') == "[a diagram] text"
    assert html_to_text("<p></p>") == ""


# -- UltraFeedback ---------------------------------------------------------------------------------------
def uf_row(prompt="Q?", good="Good.", bad="Bad.", sc=8.0, sr=4.0):
    user = {"content": prompt, "role": "user"}
    return {"prompt": prompt, "prompt_id": "p1", "chosen": [user, {"content": good, "role": "assistant"}],
            "rejected": [user, {"content": bad, "role": "assistant"}], "messages": [],
            "score_chosen": sc, "score_rejected": sr}


def test_uf_row_becomes_prefix_replies_and_meta():
    p = UF.parse_row(uf_row())
    assert p.messages == [{"role": "user", "content": "Q?"}]
    assert (p.chosen, p.rejected) == ("Good.", "Bad.")
    assert p.meta == {"prompt_id": "p1", "score_chosen": 8.0, "score_rejected": 4.0}


def test_uf_ties_are_dropped_unless_kept():
    with pytest.raises(Drop, match="tie"):
        UF.parse_row(uf_row(sc=5.0, sr=5.0))
    assert UF.parse_row(uf_row(sc=5.0, sr=5.0), keep_ties=True).chosen == "Good."


def test_uf_multi_turn_prefix():
    row = uf_row()
    turns = [{"content": "A", "role": "user"}, {"content": "B", "role": "assistant"}, {"content": "C", "role": "user"}]
    row["chosen"] = turns + [{"content": "good", "role": "assistant"}]
    row["rejected"] = turns + [{"content": "bad", "role": "assistant"}]
    assert [m["content"] for m in UF.parse_row(row).messages] == ["A", "B", "C"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: r["rejected"].__setitem__(0, {"content": "other", "role": "user"}), "prefix_mismatch"),
        (lambda r: r["chosen"].append({"content": "more?", "role": "user"}), "no_final_assistant_turn"),
        (lambda r: r["rejected"][-1].__setitem__("content", " "), "empty_reply"),
        (lambda r: r["rejected"][-1].__setitem__("content", "Good."), "identical_replies"),
        (lambda r: r.__setitem__("chosen", "not a list"), "malformed_row"),
        (lambda r: r.__setitem__("score_chosen", None), "malformed_row"),
        (lambda r: [m.__setitem__("role", "system") for m in (r["chosen"][0], r["rejected"][0])], "unsupported_role"),
    ],
)
def test_uf_drop_reasons(change, reason):
    row = uf_row()
    change(row)
    with pytest.raises(Drop) as err:
        UF.parse_row(row)
    assert err.value.reason == reason


# -- Stack Exchange --------------------------------------------------------------------------------------
def answer(aid, score, text, selected=False):
    return {"answer_id": aid, "author": "u", "author_id": 1, "author_profile": "x", "pm_score": score,
            "selected": selected, "text": text}


def se_row(answers, question="<p>How?</p>"):
    return {"qid": 7, "question": question, "answers": answers, "date": "2020/01/01", "metadata": []}


def test_se_default_pair_is_highest_versus_lowest():
    row = se_row([answer(1, 2, "<p>mid</p>"), answer(2, 5, "<p>best</p>"), answer(3, -1, "<p>worst</p>")])
    (p,) = SE.parse_question(row, "site.example")
    assert (p.chosen, p.rejected) == ("best", "worst")
    assert p.messages == [{"role": "user", "content": "How?"}]
    assert p.meta["pm_score_chosen"] == 5 and p.meta["pm_score_rejected"] == -1
    assert p.pair_key == "7/2-3"


def test_se_more_pairs_per_question_by_widest_gap_and_never_ties():
    row = se_row([answer(1, 3, "a"), answer(2, 3, "b"), answer(3, 1, "c"), answer(4, 0, "d")])
    pairs = SE.parse_question(row, "s", pairs_per_question=10)
    gaps = [p.meta["pm_score_chosen"] - p.meta["pm_score_rejected"] for p in pairs]
    assert gaps == sorted(gaps, reverse=True) and min(gaps) > 0
    assert len(pairs) == 5  # 6 ordered pairs minus the tie (a, b)


def test_se_accepted_answer_wins_a_score_tie_at_the_top():
    row = se_row([answer(1, 4, "plain"), answer(2, 4, "accepted", selected=True), answer(3, 0, "low")])
    (p,) = SE.parse_question(row, "s")
    assert p.chosen == "accepted"


def test_se_skips_an_empty_answer_and_uses_the_next_pair():
    row = se_row([answer(1, 5, "<p></p>"), answer(2, 3, "ok"), answer(3, 0, "bad")])
    (p,) = SE.parse_question(row, "s")
    assert (p.chosen, p.rejected) == ("ok", "bad")


def test_se_converts_only_the_question_and_the_answers_a_pair_uses(monkeypatch):
    converted = []

    def counting(html):
        converted.append(html)
        return html_to_text(html)

    monkeypatch.setattr(SE, "html_to_text", counting)
    row = se_row([answer(i, i, f"<p>answer {i}</p>") for i in range(6)])
    (p,) = SE.parse_question(row, "s")
    assert (p.chosen, p.rejected) == ("answer 5", "answer 0")
    assert converted == ["<p>How?</p>", "<p>answer 5</p>", "<p>answer 0</p>"]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (se_row([answer(1, 2, "a"), answer(2, 2, "b")]), "all_scores_tied"),
        (se_row([answer(1, 2, "a")]), "fewer_than_two_answers"),
        (se_row([answer(1, 2, "same"), answer(2, 0, "<p>same</p>")]), "identical_replies"),
        (se_row([answer(1, 2, "<p> </p>"), answer(2, 0, "x")]), "empty_reply"),
        (se_row([answer(1, 2, "a"), answer(2, 0, "b")], question="<p></p>"), "empty_question"),
        ({"qid": 1, "question": None, "answers": []}, "malformed_row"),
    ],
)
def test_se_drop_reasons(row, reason):
    with pytest.raises(Drop) as err:
        SE.parse_question(row, "s")
    assert err.value.reason == reason


def test_html_fast_path_equals_the_general_path_on_random_paragraph_documents():
    import random

    from katcli.data import html_text as T

    rng = random.Random(0)
    pieces = ["word", "two words", "  spaced\n out ", "&amp;", "&lt;p&gt;", "&nbsp;", "x&#39;s", "\t", "é", "`"]
    tags = ["p", "code", "a", "em", "strong", "b", "i", "span", "kbd", "sup"]
    checked = 0
    for _ in range(3000):
        doc = "".join(
            rng.choice(pieces) if rng.random() < 0.5 else rng.choice(
                [f"<{t}{a}>", f"</{t}>", f"<{t.upper()}>", f"<{t}/>"])
            for t, a in ((rng.choice(tags), rng.choice(["", ' class="x"', " href='y'"])) for _ in range(rng.randint(1, 12)))
        )
        if "<" in doc:
            # Paragraph documents are the simplest shape the fast path takes (it replaced a paragraphs-only one).
            assert T._simple_blocks(doc) is not None, doc
            assert T._simple_blocks(doc) == T._general(doc), doc
            checked += 1
    assert checked > 2000
    for other in ("<p>a < b</p>", "<br>", "<P>x<!-- c -->"):
        assert T._simple_blocks(other) is None
    for now_simple in ("<p>a</p><pre>b</pre>", "<p>x</p><ul><li>y</li></ul>"):
        assert T._simple_blocks(now_simple) == T._general(now_simple)
