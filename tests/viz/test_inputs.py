"""Reading the embed and prefixes files: consistency checks name the file, the line and the fix."""

from __future__ import annotations

import json

import numpy as np
import pytest
from vizkit import embed_files, make_embed_files  # noqa: F401  (embed_files is a fixture)

from katcli.errors import KatError
from katcli.viz.inputs import (
    TEXT_CHARS,
    load_embedding_inputs,
    prompt_text,
    read_prompts,
    source_label,
    truncate,
)


def _message(call) -> str:
    with pytest.raises(KatError) as err:
        call()
    return err.value.message


def _load(files):
    p = files.paths
    return load_embedding_inputs(p.embeddings, p.weights, p.ids, p.metadata)


def test_loads_the_four_embed_files(embed_files):
    inputs = _load(embed_files)
    assert inputs.n == 120
    assert inputs.embeddings.shape == (120, 16)
    assert inputs.ids == embed_files.ids
    assert inputs.weights.dtype == np.float64
    assert inputs.metadata["power"] == 1.0


def test_reads_text_and_source_of_the_wanted_rows_only(embed_files):
    prompts = read_prompts(embed_files.paths.prefixes, embed_files.ids, np.array([0, 5, 119]))
    assert sorted(prompts) == [0, 5, 119]
    assert prompts[5].text == embed_files.texts[5]
    assert prompts[0].src == "hh-rlhf+ultrafeedback-binarized"  # row 0 occurs in two sources


def test_ids_out_of_order_are_named_with_the_line(embed_files):
    ids = list(embed_files.ids)
    ids[3], ids[4] = ids[4], ids[3]
    with pytest.raises(KatError) as err:
        read_prompts(embed_files.paths.prefixes, ids, np.arange(3))
    assert err.value.message == (
        "ids.json does not match prefixes_all.jsonl: row 3 is 'p000004' in ids.json but 'p000003' here"
    )
    assert err.value.line == 4 and err.value.file == str(embed_files.paths.prefixes)
    assert "kat embed" in err.value.hint


def test_a_prefix_count_mismatch_names_both_counts(embed_files):
    prefixes, ids = embed_files.paths.prefixes, embed_files.ids
    too_many = _message(lambda: read_prompts(prefixes, ids + ["extra"], np.arange(3)))
    assert too_many == "prefixes_all.jsonl has 120 prefixes but ids.json lists 121"
    too_few = _message(lambda: read_prompts(prefixes, ids[:-1], np.arange(3)))
    assert too_few == "prefixes_all.jsonl has 120 prefixes but ids.json lists 119"


def test_broken_prefix_line_is_located(embed_files):
    path = embed_files.paths.prefixes
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[6] = '{"id": "p000006", "prefix": '
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(KatError) as err:
        read_prompts(path, embed_files.ids, np.arange(3))
    assert err.value.message.startswith("invalid JSON: ")
    assert err.value.line == 7


def test_weights_that_do_not_match_the_embeddings(embed_files):
    np.save(embed_files.paths.weights, np.full(119, 1 / 119, dtype=np.float32))
    assert _message(lambda: _load(embed_files)) == "density weights have shape [119] but the embeddings have 120 rows"


def test_non_positive_weights(embed_files):
    w = embed_files.weights.copy()
    w[2] = 0.0
    np.save(embed_files.paths.weights, w)
    assert _message(lambda: _load(embed_files)) == "density weights must be finite and positive"


def test_non_finite_embeddings(embed_files):
    e = embed_files.embeddings.copy()
    e[7, 1] = np.nan
    np.save(embed_files.paths.embeddings, e)
    assert _message(lambda: _load(embed_files)) == "embeddings contain NaN or infinite values"


def test_ids_count_and_duplicates(embed_files):
    embed_files.paths.ids.write_text(json.dumps(embed_files.ids[:-1]), encoding="utf-8")
    assert _message(lambda: _load(embed_files)) == "ids.json lists 119 ids but the embeddings have 120 rows"
    embed_files.paths.ids.write_text(json.dumps(["a"] * 120), encoding="utf-8")
    assert _message(lambda: _load(embed_files)) == "ids.json contains duplicate ids"


def test_missing_embeddings_say_which_command_makes_them(tmp_path):
    files = make_embed_files(tmp_path, n=10)
    files.paths.embeddings.unlink()
    with pytest.raises(KatError) as err:
        _load(files)
    assert (err.value.message, err.value.hint) == ("embeddings not found", "run `kat embed` first")


def test_prompt_text_is_the_first_user_message():
    msgs = [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "  first question \n"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": "second"},
    ]
    assert prompt_text(msgs) == "first question"
    assert prompt_text([{"role": "assistant", "content": "only"}]) == "only"
    assert prompt_text([{"role": "user", "content": "   "}]) is None
    assert prompt_text("not a list") is None


def test_truncate_and_source_label():
    assert truncate("x" * TEXT_CHARS) == "x" * TEXT_CHARS
    cut = truncate("y" * (TEXT_CHARS + 5))
    assert len(cut) == TEXT_CHARS and cut.endswith("…")
    assert source_label(["b", "a", "b"]) == "a+b"
    assert source_label("hh-rlhf") == "hh-rlhf"
    assert source_label([]) == "unknown"
