"""nanochat import (domain part): layouts with/without `_orig_mod.`, bf16 wte, key mismatches, safe unpickling."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from katcli.errors import KatError
from katcli.model.gpt import GPT
from katcli.model.nanochat import read_nanochat, unpickle_tokenizer
from katcli.model.tokenizer import Tokenizer

from modelkit import one_torch_thread, tiny_model, tokenizer, write_nanochat_dir  # noqa: F401


@pytest.mark.parametrize(("compiled", "bf16_wte"), [(False, False), (True, False), (True, True)])
def test_import_gives_identical_logits(tmp_path, tiny_model, tokenizer, compiled, bf16_wte) -> None:
    base = write_nanochat_dir(tmp_path / "nc", tiny_model, tokenizer, compiled=compiled, bf16_wte=bf16_wte)
    got = read_nanochat(base)
    assert (got.source, got.tag, got.step) == ("sft", "d2", 700)
    assert got.config == tiny_model.config
    assert all(v.dtype == torch.float32 for v in got.state.values())
    assert not any(k.startswith("_orig_mod.") for k in got.state)
    reference = tiny_model
    if bf16_wte:  # the checkpoint holds bf16-rounded embeddings: compare against exactly those
        reference = GPT(tiny_model.config, seed=None)
        state = tiny_model.state_dict()
        state["transformer.wte.weight"] = state["transformer.wte.weight"].bfloat16().float()
        reference.load_state_dict(state)
    imported = GPT.from_state_dict(got.config, got.state)
    idx = torch.tensor([tokenizer.render_for_completion([{"role": "user", "content": "Hello world! 😀"}])])
    with torch.no_grad():
        assert torch.equal(imported(idx), reference(idx))
    assert got.tokenizer.sha256() == tokenizer.sha256()


def test_mismatched_checkpoint_lists_the_keys(tmp_path, tiny_model, tokenizer) -> None:
    def edit(state):
        del state["lm_head.weight"]
        state["transformer.h.0.attn.ve_gate.weight"] = torch.zeros(2, 2)
        state["transformer.h.1.mlp.c_fc.weight"] = torch.zeros(3, 64)

    base = write_nanochat_dir(tmp_path / "nc", tiny_model, tokenizer, compiled=True, state_edit=edit)
    with pytest.raises(KatError) as info:
        read_nanochat(base)
    assert info.value.message == (
        "checkpoint does not match kat's GPT architecture; "
        "unexpected keys: transformer.h.0.attn.ve_gate.weight; missing keys: lm_head.weight; "
        "shape mismatches: transformer.h.1.mlp.c_fc.weight (3, 64) != (256, 64)"
    )
    assert info.value.file.endswith("chatsft_checkpoints/d2/model_000700.pt")


def test_tag_and_step_selection(tmp_path, tiny_model, tokenizer) -> None:
    base = tmp_path / "nc"
    for tag, step in (("d2", 5), ("d10", 3), ("d10", 9), ("custom", 1)):
        write_nanochat_dir(base, tiny_model, tokenizer, source_dir="base_checkpoints", tag=tag, step=step)
    assert (read_nanochat(base, source="base").tag, read_nanochat(base, source="base").step) == ("d10", 9)
    assert read_nanochat(base, source="base", tag="d10", step=3).step == 3
    assert read_nanochat(base, source="base", tag="custom").step == 1
    with pytest.raises(KatError, match="no mid_checkpoints/ in the nanochat directory") as info:
        read_nanochat(base, source="mid")
    # it says which source the directory does have (the default, sft, is often not the one trained)
    assert info.value.hint == "this directory has base_checkpoints/: pass --source base"
    with pytest.raises(KatError, match="model tag 'd7' not found"):
        read_nanochat(base, source="base", tag="d7")
    with pytest.raises(KatError) as info:
        read_nanochat(base, source="base", tag="d10", step=4)
    assert info.value.message == "no checkpoint for step 4"
    assert info.value.hint == "available steps: 3, 9; or omit --step for the latest"


def test_unknown_model_config_fields_are_refused(tmp_path, tiny_model, tokenizer) -> None:
    import json

    base = write_nanochat_dir(tmp_path / "nc", tiny_model, tokenizer)
    meta_path = base / "chatsft_checkpoints" / "d2" / "meta_000700.json"
    meta = json.loads(meta_path.read_text())
    meta["model_config"]["window_pattern"] = "SSSL"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(KatError, match="unknown fields: window_pattern"):
        read_nanochat(base)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_tokenizer_unpickling_is_restricted(tmp_path, tokenizer) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"enc": _Evil(marker)}))
    with pytest.raises(KatError, match="global pathlib.Path.touch is not allowed|is not allowed in a nanochat"):
        unpickle_tokenizer(evil)
    assert not marker.exists()
    for protocol in (2, 5):  # protocol 2 spells bytes through _codecs.encode
        good = tmp_path / f"ok{protocol}.pkl"
        good.write_bytes(pickle.dumps(tokenizer.enc, protocol=protocol))
        converted = unpickle_tokenizer(good)
        assert isinstance(converted, Tokenizer) and converted.sha256() == tokenizer.sha256()
