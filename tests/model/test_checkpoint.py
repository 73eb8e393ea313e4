"""Checkpoints: bit-exact round trip, latest step, atomic writes, pickle refusal, strict model loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from katcli.errors import KatError
from katcli.model import GPT, load_checkpoint, save_checkpoint
from katcli.model.checkpoint import find_last_step, load_model

from modelkit import one_torch_thread, tiny_model, tokenizer  # noqa: F401  (fixtures)


class _Payload:
    """A pickled object whose unpickling would create a marker file (a stand-in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _trained(model: GPT) -> torch.optim.Optimizer:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    idx = torch.randint(0, 400, (2, 9), generator=torch.Generator().manual_seed(0))
    model(idx[:, :-1], idx[:, 1:]).backward()
    opt.step()
    return opt


def test_round_trip_is_bit_exact(tiny_model: GPT, tmp_path: Path) -> None:
    opt = _trained(tiny_model)
    state = tiny_model.state_dict()
    state["transformer.wte.weight"] = state["transformer.wte.weight"].bfloat16()  # dtypes survive too
    meta = {"model_config": tiny_model.config.to_dict(), "tokenizer_sha256": "ab" * 32, "train": {"lr": 0.1}}
    written = save_checkpoint(tmp_path / "ckpt", 7, state, meta, opt.state_dict())
    assert sorted(p.name for p in written.values()) == ["meta_000007.json", "model_000007.pt", "optim_000007.pt"]
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == sorted(p.name for p in written.values())
    ckpt = load_checkpoint(tmp_path / "ckpt", load_optim=True)
    assert ckpt.step == 7 and ckpt.meta == meta
    assert ckpt.model_state.keys() == state.keys()
    for key, value in state.items():
        assert ckpt.model_state[key].dtype == value.dtype
        assert torch.equal(ckpt.model_state[key], value)
    saved_opt = opt.state_dict()
    assert ckpt.optim_state["param_groups"] == saved_opt["param_groups"]
    for pid, st in saved_opt["state"].items():
        for name, tensor in st.items():
            assert torch.equal(ckpt.optim_state["state"][pid][name], tensor)
    text = (tmp_path / "ckpt" / "meta_000007.json").read_text()
    assert text == json.dumps(meta, indent=2, sort_keys=True) + "\n"


def test_latest_step_is_found(tiny_model: GPT, tmp_path: Path) -> None:
    for step in (0, 250, 1000, 40):
        save_checkpoint(tmp_path, step, tiny_model, {"model_config": tiny_model.config.to_dict(), "step": step})
    (tmp_path / "model_001000_backup.pt").write_bytes(b"junk")
    assert find_last_step(tmp_path) == 1000
    assert load_checkpoint(tmp_path).meta["step"] == 1000
    assert load_checkpoint(tmp_path, 40).meta["step"] == 40


def test_load_model_rebuilds_the_same_gpt(tiny_model: GPT, tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 3, tiny_model, {"model_config": tiny_model.config.to_dict()})
    model, ckpt = load_model(tmp_path)
    assert ckpt.step == 3 and model.config == tiny_model.config
    idx = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.equal(model(idx), tiny_model(idx))
    # A bf16 embedding (as nanochat saves it) loads as fp32 holding exactly the bf16 values.
    state = tiny_model.state_dict()
    state["transformer.wte.weight"] = state["transformer.wte.weight"].bfloat16()
    save_checkpoint(tmp_path, 4, state, {"model_config": tiny_model.config.to_dict()})
    model, _ = load_model(tmp_path)
    wte = model.transformer.wte.weight
    assert wte.dtype == torch.float32 and torch.equal(wte, state["transformer.wte.weight"].float())


def test_pickle_bearing_checkpoint_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    torch.save({"lm_head.weight": torch.zeros(2, 2), "extra": _Payload(marker)}, tmp_path / "model_000001.pt")
    (tmp_path / "meta_000001.json").write_text("{}")
    with pytest.raises(KatError) as info:
        load_checkpoint(tmp_path)
    assert info.value.message == "refusing to load a checkpoint that contains pickled Python objects beyond tensors"
    assert info.value.file == str(tmp_path / "model_000001.pt")
    assert not marker.exists()


def test_non_tensor_entries_and_missing_files_are_refused(tmp_path: Path) -> None:
    torch.save({"w": torch.zeros(1), "n": 3}, tmp_path / "model_000002.pt")
    (tmp_path / "meta_000002.json").write_text("{}")
    with pytest.raises(KatError, match=r"not a flat state dict of tensors \(non-tensors: n\)"):
        load_checkpoint(tmp_path)
    with pytest.raises(KatError, match="checkpoint directory not found"):
        load_checkpoint(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(KatError, match="no model_<step>.pt checkpoint found"):
        load_checkpoint(empty)
    (empty / "model_000001.pt").write_bytes(b"not a zip")
    with pytest.raises(KatError, match="cannot read checkpoint"):
        load_checkpoint(empty)
    torch.save({"w": torch.zeros(1)}, empty / "model_000001.pt")
    with pytest.raises(KatError, match="checkpoint meta not found"):
        load_checkpoint(empty)


def test_a_failed_write_leaves_the_previous_file_and_no_temp(tiny_model: GPT, tmp_path: Path, monkeypatch) -> None:
    save_checkpoint(tmp_path, 5, tiny_model, {"v": 1})
    before = (tmp_path / "model_000005.pt").read_bytes()

    def boom(obj, f, *a, **kw):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 5, tiny_model, {"v": 2})
    assert (tmp_path / "model_000005.pt").read_bytes() == before
    assert json.loads((tmp_path / "meta_000005.json").read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta_000005.json", "model_000005.pt"]


def test_every_refusal_says_what_to_do(tmp_path: Path) -> None:
    """Missing files, a meta that is not there or not JSON, bytes that are not a weights file: each has a hint."""
    d = tmp_path / "ckpt"
    d.mkdir()
    with pytest.raises(KatError) as info:
        load_checkpoint(tmp_path / "missing")
    assert info.value.message == "checkpoint directory not found" and info.value.hint
    for junk in (b"not a zip", b"hello"):  # the second raised a bare KeyError from torch's legacy reader
        (d / "model_000001.pt").write_bytes(junk)
        with pytest.raises(KatError) as info:
            load_checkpoint(d)
        assert info.value.message == "cannot read checkpoint: not a PyTorch weights file"
        assert info.value.hint.startswith("re-create the checkpoint")
    torch.save({"w": torch.zeros(1)}, d / "model_000001.pt")
    with pytest.raises(KatError) as info:
        load_checkpoint(d)
    assert (info.value.message, info.value.file) == ("checkpoint meta not found", str(d / "meta_000001.json"))
    assert info.value.hint.startswith("re-create the checkpoint")
    (d / "meta_000001.json").write_text("{broken")
    with pytest.raises(KatError) as info:
        load_checkpoint(d)
    assert info.value.message.startswith("checkpoint meta is not valid JSON") and info.value.hint


def _storage_devices(path: Path) -> set[str]:
    """The device every storage in a saved file was recorded on (read without moving anything)."""
    seen: set[str] = set()

    def where(storage, location):
        seen.add(location)
        return storage

    torch.load(path, map_location=where, weights_only=True)
    return seen


def test_files_hold_cpu_tensors_and_a_meta_model_is_refused(tiny_model: GPT, tmp_path: Path) -> None:
    opt = _trained(tiny_model)
    paths = save_checkpoint(tmp_path, 1, tiny_model, {"model_config": tiny_model.config.to_dict()},
                            {"optimizer": opt.state_dict()})
    assert _storage_devices(paths["model"]) == {"cpu"} and _storage_devices(paths["optim"]) == {"cpu"}
    # A model whose weights were never loaded (the meta device) has no values: writing it would make a checkpoint
    # that loads as garbage, on a device no machine has. Refused, and nothing is left behind.
    with torch.device("meta"):
        ghost = GPT(tiny_model.config, seed=None)
    with pytest.raises(ValueError, match="meta device"):
        save_checkpoint(tmp_path / "ghost", 1, ghost, {"model_config": ghost.config.to_dict()})
    with pytest.raises(ValueError, match="meta device"):
        save_checkpoint(tmp_path / "ghost-optim", 1, tiny_model, {}, {"optimizer": {"exp_avg": torch.empty(2, device="meta")}})
    assert not any((tmp_path / "ghost").glob("*.pt"))


def test_on_cpu_moves_every_tensor_of_a_nested_state_and_keeps_cpu_tensors_as_they_are() -> None:
    from katcli.model.checkpoint import on_cpu

    t = torch.arange(3.0)
    state = {"a": t, "b": [t, (t, 1)], "c": "x"}
    out = on_cpu(state)
    assert out["a"] is t and out["b"][0] is t and out["b"][1][0] is t and out["b"][1][1] == 1 and out["c"] == "x"
