"""Streaming prefix dedupe: outputs, statistics, and memory that grows with prefixes rather than pairs."""

from __future__ import annotations

import io
import json
import tracemalloc

import pytest

from katcli.data import schema
from katcli.data.prefixes import MAP_HEADER, build_prefixes, format_prefix_stats
from katcli.errors import KatError


def pair(i: int, first: str, src: str = "hh-rlhf", turns: int = 1) -> dict:
    msgs = [{"role": "user", "content": first}]
    for t in range(1, turns):
        msgs += [{"role": "assistant", "content": f"a{t}-{i}"}, {"role": "user", "content": f"u{t}-{i}"}]
    return schema.make_pair(pair_id=f"p{i}", messages=msgs, chosen=f"good {i}", rejected=f"bad {i}", src=src,
                            split="train", meta={})


def write(path, pairs):
    path.write_bytes(b"".join(schema.encode_pair(p) for p in pairs))
    return path


def dedupe(path):
    pre, mp = io.BytesIO(), io.BytesIO()
    report = build_prefixes(path, pre, mp)
    return report, [json.loads(x) for x in pre.getvalue().splitlines()], mp.getvalue().decode().splitlines()


def test_prefixes_map_and_stats(tmp_path):
    pairs = [
        pair(0, "Hello  world", turns=2),
        pair(1, "Other", src="stack-exchange-preferences"),
        pair(2, "Hello world"),  # same prefix id as pair 0 (whitespace-normalised), fewer turns
        pair(3, "Hello world", src="ultrafeedback-binarized"),
    ]
    report, prefixes, mapping = dedupe(write(tmp_path / "pairs.jsonl", pairs))
    assert [p["id"] for p in prefixes] == [pairs[0]["prefix_id"], pairs[1]["prefix_id"]]
    assert prefixes[0]["prefix"] == pairs[0]["prefix"]  # the first pair's full prefix
    assert prefixes[0]["n_pairs"] == 3 and prefixes[0]["srcs"] == ["hh-rlhf", "ultrafeedback-binarized"]
    assert prefixes[1] == {"id": pairs[1]["prefix_id"], "prefix": pairs[1]["prefix"], "n_pairs": 1,
                           "srcs": ["stack-exchange-preferences"]}
    assert mapping[0] == MAP_HEADER.decode().strip()
    assert mapping[1:] == [f"p{i}\t{p['prefix_id']}" for i, p in enumerate(pairs)]
    stats = report.to_json()
    assert stats == {
        "pairs": 4, "unique_prefixes": 2, "dedup_ratio": 0.5, "pairs_per_prefix": 2.0, "max_pairs_per_prefix": 3,
        "multi_source_prefixes": 1,
        "pairs_by_src": {"hh-rlhf": 2, "stack-exchange-preferences": 1, "ultrafeedback-binarized": 1},
        "prefixes_by_src": {"hh-rlhf": 1, "stack-exchange-preferences": 1, "ultrafeedback-binarized": 1},
        "turns_histogram": {"1": 1, "2": 1},
    }
    text = format_prefix_stats(stats)
    assert "unique_prefixes: 2\n" in text and "dedup_ratio: 0.5000" in text and "  1:        1  " in text


def test_memory_grows_with_unique_prefixes_not_pairs(tmp_path):
    def peak(n_pairs, n_prefixes):
        path = write(tmp_path / f"p{n_pairs}_{n_prefixes}.jsonl",
                     (pair(i, f"prompt number {i % n_prefixes} " + "x" * 200) for i in range(n_pairs)))
        with open(tmp_path / "pre", "wb") as pre, open(tmp_path / "map", "wb") as mp:
            tracemalloc.start()
            build_prefixes(path, pre, mp)
            _, top = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        return top

    few = peak(5_000, 10)
    assert peak(10_000, 10) < few + 50_000  # doubling the pairs (1.3 -> 2.6 MB) leaves the peak flat
    assert few < 200_000
    assert peak(5_000, 5_000) > few + 500_000  # what does cost memory: unique prefixes (~100+ B each)


def test_a_broken_line_names_file_and_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(schema.encode_pair(pair(0, "a")) + b'{"id": "x"}\n')
    with pytest.raises(KatError) as err:
        dedupe(path)
    assert err.value.located() == f"not a valid pair: no prefix_id field ({path}:2)"


def test_raw_value_copies_a_value_verbatim_whatever_the_key_order_or_spacing():
    from katcli.data.prefixes import raw_value

    text = '{ "meta" : {"prefix": 1}, "id":"a\\"b",\t"prefix" : {"messages": [ {"role":"user","content":"é \\u00e9"} ]} }'
    assert raw_value(text, "prefix") == '{"messages": [ {"role":"user","content":"é \\u00e9"} ]}'
    assert raw_value(text, "id") == '"a\\"b"'
    with pytest.raises(KeyError):
        raw_value(text, "chosen")
