"""Sequence building: render + response + <|assistant_end|>, left-trimming that keeps <|bos|> and the last user turn."""

from __future__ import annotations

import pytest
from rmkit import make_tokenizer, planted_pairs

from katcli.errors import KatError
from katcli.train.batching import collate, eval_batches, split_micro
from katcli.train.sequences import encode_pairs, fit_pair

BOS, US, END = 100, 101, 104


def _fit(prefix, chosen, rejected, max_len, max_resp=8):
    return fit_pair(prefix, chosen, rejected, bos=BOS, user_start=US, end=END, max_len=max_len,
                    max_response_len=max_resp)


# <|bos|> <|user_start|> 1 2 3 <|user_end|>=102 <|assistant_start|>=103 9 9 <|assistant_end|> <|user_start|> 4 5 102 103
PREFIX = [BOS, US, 1, 2, 3, 102, 103, 9, 9, END, US, 4, 5, 102, 103]


def test_fitting_pairs_are_untouched():
    c, r, trim = _fit(PREFIX, [7, 7], [8], max_len=40)
    assert c == PREFIX + [7, 7, END]
    assert r == PREFIX + [8, END]
    assert (trim.prefix_trimmed, trim.final_turn_cut, trim.responses_cut) == (False, False, 0)


def test_prefix_is_trimmed_from_the_left_keeping_bos_and_the_final_user_turn():
    c, r, trim = _fit(PREFIX, [7, 7, 7], [8], max_len=12)
    assert c == [BOS, 9, END, US, 4, 5, 102, 103, 7, 7, 7, END]  # budget 8 = bos + the 7 newest prefix tokens
    assert r[:-2] == c[:-4]  # chosen and rejected share the trimmed prefix
    assert len(c) == 12 and trim.prefix_trimmed and not trim.final_turn_cut


def test_final_user_turn_is_cut_only_when_it_alone_does_not_fit():
    c, _, trim = _fit(PREFIX, [7, 7, 7, 7], [8], max_len=10)
    assert c == [BOS, US, 5, 102, 103, 7, 7, 7, 7, END]
    assert trim.final_turn_cut


def test_responses_are_capped():
    c, r, trim = _fit(PREFIX, list(range(20)), [8] * 3, max_len=64, max_resp=5)
    assert c == PREFIX + [0, 1, 2, 3, 4, END]
    assert trim.responses_cut == 1


def test_encode_pairs_matches_the_tokenizers_rendering():
    pairs = planted_pairs(6)
    tok = make_tokenizer(pairs)
    rows = [(p["prefix"]["messages"], p["chosen"], p["rejected"]) for p in pairs]
    enc = encode_pairs(tok, rows, max_len=256, max_response_len=128)
    end = tok.encode_special("<|assistant_end|>")
    for i, p in enumerate(pairs):
        prefix = tok.render_for_completion(p["prefix"]["messages"])
        assert enc.chosen(i).tolist() == prefix + tok.encode(p["chosen"]) + [end]
        assert enc.rejected(i).tolist() == prefix + tok.encode(p["rejected"]) + [end]
    assert enc.stats == {"pairs": 12, "prefix_trimmed": 0, "final_turn_cut": 0, "responses_cut": 0}
    short = encode_pairs(tok, rows, max_len=16, max_response_len=4)
    assert int(short.pair_lengths.max()) <= 16 and short.prefix_trimmed > 0 and short.responses_cut > 0
    assert all(short.chosen(i)[0] == tok.bos_token_id for i in range(len(rows)))


def test_unrenderable_prefix_names_the_pair():
    pairs = planted_pairs(1)
    tok = make_tokenizer(pairs)
    bad = [([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "a", "b")]
    with pytest.raises(KatError) as err:
        encode_pairs(tok, bad, ids=["pair-7"], max_len=64, max_response_len=16)
    assert err.value.message == "pair pair-7: a completion prefix must end with a user message"


def test_collate_stacks_chosen_then_rejected_and_counts_padding():
    pairs = planted_pairs(4)
    tok = make_tokenizer(pairs)
    enc = encode_pairs(tok, [(p["prefix"]["messages"], p["chosen"], p["rejected"]) for p in pairs],
                       max_len=128, max_response_len=64)
    mb = collate(enc, [0, 3], pad_id=-5)
    width = int(max(enc.chosen_len[[0, 3]].max(), enc.rejected_len[[0, 3]].max()))
    assert mb.ids.shape == (4, width)
    assert mb.ids[1, : enc.chosen_len[3]].tolist() == enc.chosen(3).tolist()
    assert mb.ids[2, : enc.rejected_len[0]].tolist() == enc.rejected(0).tolist()
    assert mb.lengths.tolist() == [enc.chosen_len[0], enc.chosen_len[3], enc.rejected_len[0], enc.rejected_len[3]]
    assert mb.real_tokens == int(mb.lengths.sum())
    assert mb.pad_tokens == int((mb.ids == -5).sum())
    fixed = collate(enc, [0, 3], pad_id=-5, pad_to=128)
    assert fixed.ids.shape == (4, 128) and fixed.pad_fraction > mb.pad_fraction
    assert [len(c) for c in split_micro(list(range(7)), 3)] == [3, 3, 1]
    seen = [i for chunk, _ in eval_batches(enc, range(8), batch_size=3, pad_id=0) for i in chunk.tolist()]
    assert sorted(seen) == list(range(8))
