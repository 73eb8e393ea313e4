"""The reference log-prob cache: compute through a callable, save atomically, load only for the same key."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from katcli.errors import KatError
from katcli.train.ddp import DistContext
from katcli.train.ref_cache import (
    ARRAY_FILE,
    KEY_FILE,
    TASK,
    RefCacheKey,
    cached_or_computed,
    compute_ref_logps,
    load_ref_logps,
    save_ref_logps,
)

KEY = RefCacheKey(
    reference_sha256="a" * 64, pairs_sha256="b" * 64, tokenizer_sha256="c" * 64, max_len=256, max_response_len=128
)


def _batches(n: int, size: int, *, order_seed: int = 0):
    """(pair indices, micro-batch) over a shuffled order; the micro-batch is the rows' pair ids (chosen, rejected)."""
    order = np.random.default_rng(order_seed).permutation(n)
    for lo in range(0, n, size):
        chunk = order[lo : lo + size]
        yield chunk, {"rows": np.concatenate([chunk, chunk]), "chosen": np.r_[np.ones(len(chunk)), np.zeros(len(chunk))]}


def _logprob_fn(mb):
    """A deterministic stand-in for a model: pair i's chosen reply has log-prob −(i + 0.5)/3, rejected −2i − 1."""
    rows, is_chosen = mb["rows"].astype(np.float64), mb["chosen"]
    logps = np.where(is_chosen == 1, -(rows + 0.5) / 3, -2 * rows - 1)
    counts = np.where(is_chosen == 1, rows % 5 + 1, rows % 3 + 2)
    return torch.from_numpy(logps).float(), torch.from_numpy(counts)


def test_compute_places_every_pair_by_index_whatever_the_batch_order():
    calls = []
    out = compute_ref_logps(11, _batches(11, 4), _logprob_fn, progress=lambda t, d, n=None: calls.append((t, d, n)))
    i = np.arange(11)
    assert np.array_equal(out.chosen, torch.from_numpy(-(i + 0.5) / 3).float().double().numpy())
    assert np.array_equal(out.rejected, (-2.0 * i - 1))
    assert out.chosen_tokens.tolist() == (i % 5 + 1).tolist() and out.rejected_tokens.tolist() == (i % 3 + 2).tolist()
    assert out.chosen.dtype == np.float64 and out.chosen_tokens.dtype == np.int64
    assert calls[0] == (TASK, 0, 11) and calls[-1] == (TASK, 11, 11)
    other = compute_ref_logps(11, _batches(11, 3, order_seed=5), _logprob_fn)
    assert np.array_equal(other.chosen, out.chosen)


def test_compute_refuses_batches_that_miss_or_repeat_a_pair():
    with pytest.raises(ValueError, match="exactly once"):
        compute_ref_logps(12, _batches(11, 4), _logprob_fn)
    twice = list(_batches(4, 2)) + list(_batches(4, 4))
    with pytest.raises(ValueError, match="exactly once"):
        compute_ref_logps(4, twice, _logprob_fn)
    with pytest.raises(ValueError, match="returned 3 values"):
        compute_ref_logps(2, [(np.array([0, 1]), None)], lambda mb: (torch.zeros(3), torch.ones(3)))


class _Captured(Exception):
    pass


class _TwoRanks(DistContext):
    """One rank of a pretend two-process group: the all-reduce adds what the other rank contributed."""

    def __init__(self, rank: int, other: torch.Tensor | None = None) -> None:
        super().__init__(rank=rank, world_size=2)
        self.other = other
        self.mine: torch.Tensor | None = None

    def all_reduce_sum(self, tensor):
        self.mine = tensor.clone()
        if self.other is None:
            raise _Captured
        tensor += self.other
        return tensor


def test_ranks_share_the_batches_and_their_sum_is_the_single_process_result():
    one = compute_ref_logps(9, _batches(9, 2), _logprob_fn)
    first = _TwoRanks(0)
    with pytest.raises(_Captured):
        compute_ref_logps(9, _batches(9, 2), _logprob_fn, dist=first)
    second = _TwoRanks(1, other=first.mine)
    both = compute_ref_logps(9, _batches(9, 2), _logprob_fn, dist=second)
    done0, done1 = first.mine[:, 2] > 0, second.mine[:, 2] > 0
    assert int(done0.sum()) == 5 and int(done1.sum()) == 4 and not (done0 & done1).any()  # batches 0, 2, 4 | 1, 3
    for name in ("chosen", "rejected", "chosen_tokens", "rejected_tokens"):
        assert np.array_equal(getattr(both, name), getattr(one, name))


def test_save_then_load_round_trips_exactly_and_writes_identical_bytes(tmp_path):
    logps = compute_ref_logps(7, _batches(7, 3), _logprob_fn)
    files = save_ref_logps(tmp_path / "run", KEY, logps)
    assert [p.name for p in files] == [ARRAY_FILE, KEY_FILE]
    first = [p.read_bytes() for p in files]
    found = load_ref_logps(tmp_path / "run", KEY, n_pairs=7)
    assert found.state == "hit"
    for name in ("chosen", "rejected", "chosen_tokens", "rejected_tokens"):
        assert np.array_equal(getattr(found.logps, name), getattr(logps, name))
    save_ref_logps(tmp_path / "run", KEY, logps)
    assert [p.read_bytes() for p in files] == first
    record = json.loads(files[1].read_text())
    assert record["key"] == KEY.to_json() and record["pairs"] == 7 and record["key"]["format"] == 1
    assert np.load(files[0], allow_pickle=False).dtype.names == (
        "chosen_logp", "rejected_logp", "chosen_tokens", "rejected_tokens"
    )
    c, r = found.logps.take([3, 1])
    assert c.dtype == torch.float64 and c.tolist() == [logps.chosen[3], logps.chosen[1]]
    assert r.tolist() == [logps.rejected[3], logps.rejected[1]]
    sub = found.logps.subset([3, 1])
    assert sub.chosen_tokens.tolist() == [logps.chosen_tokens[3], logps.chosen_tokens[1]]


@pytest.mark.parametrize(
    "field,value,word",
    [
        ("reference_sha256", "d" * 64, "the reference model's weights"),
        ("pairs_sha256", "e" * 64, "the pairs file"),
        ("tokenizer_sha256", "f" * 64, "the tokenizer"),
        ("max_len", 512, "--max-len"),
        ("max_response_len", 64, "--max-response-len"),
        ("device", "cuda:NVIDIA H200", "the device (--device)"),
        ("dtype", "bf16", "the compute precision (--dtype)"),
        ("batch_size", 16, "the reference pass's batch size"),
        ("format", 2, "the cache format"),
    ],
)
def test_a_different_key_is_stale_and_says_what_changed(tmp_path, field, value, word):
    save_ref_logps(tmp_path, KEY, compute_ref_logps(3, _batches(3, 3), _logprob_fn))
    found = load_ref_logps(tmp_path, replace(KEY, **{field: value}))
    assert found.state == "stale" and found.logps is None
    assert found.reason == f"{word} changed since they were computed"


def test_a_key_written_before_the_device_fields_reads_as_cpu_fp32_with_an_unknown_batch(tmp_path):
    # Every cache kat wrote before the key named the device was computed on the CPU in float32.
    save_ref_logps(tmp_path, KEY, compute_ref_logps(3, _batches(3, 3), _logprob_fn))
    record = json.loads((tmp_path / KEY_FILE).read_text())
    old = {k: v for k, v in record["key"].items() if k not in ("device", "dtype", "batch_size")}
    (tmp_path / KEY_FILE).write_text(json.dumps({**record, "key": old}))
    assert RefCacheKey.from_json(old) == replace(KEY, device="cpu", dtype="fp32", batch_size=None)
    assert load_ref_logps(tmp_path, KEY).state == "hit"  # KEY has no batch size either
    stale = load_ref_logps(tmp_path, replace(KEY, batch_size=8))
    assert stale.state == "stale" and stale.reason == "the reference pass's batch size changed since they were computed"
    assert load_ref_logps(tmp_path, replace(KEY, device="cuda:NVIDIA H200")).state == "stale"


def test_another_pair_count_is_stale(tmp_path):
    save_ref_logps(tmp_path, KEY, compute_ref_logps(3, _batches(3, 3), _logprob_fn))
    assert load_ref_logps(tmp_path, KEY, n_pairs=4).reason == "they cover 3 pairs, not 4"


def test_missing_files_are_a_miss(tmp_path):
    assert load_ref_logps(tmp_path, KEY).state == "missing"
    files = save_ref_logps(tmp_path, KEY, compute_ref_logps(3, _batches(3, 3), _logprob_fn))
    files[1].unlink()  # a crash between writing the array and its key: a miss, not a mismatch
    assert load_ref_logps(tmp_path, KEY).state == "missing"
    save_ref_logps(tmp_path, KEY, compute_ref_logps(3, _batches(3, 3), _logprob_fn))
    files[0].unlink()
    assert load_ref_logps(tmp_path, KEY).reason == f"{ARRAY_FILE} is missing"


def test_a_modified_array_is_an_error_naming_the_file(tmp_path):
    files = save_ref_logps(tmp_path, KEY, compute_ref_logps(3, _batches(3, 3), _logprob_fn))
    rec = np.load(files[0], allow_pickle=False)
    rec["chosen_logp"][1] += 1.0
    np.save(files[0], rec, allow_pickle=False)
    with pytest.raises(KatError) as err:
        load_ref_logps(tmp_path, KEY)
    assert err.value.message == (
        "the cached reference log-probs do not match the checksum recorded in ref_logps.json: the file was modified"
    )
    assert err.value.file == str(files[0])
    assert err.value.hint.startswith(f"delete {files[0]} and {files[1]}, then re-run the same command")
    # A stale key is recomputed whatever the array holds: the checksum only guards numbers kat would reuse.
    assert load_ref_logps(tmp_path, replace(KEY, max_len=1)).state == "stale"


def test_a_broken_key_file_is_an_error_naming_it(tmp_path):
    files = save_ref_logps(tmp_path, KEY, compute_ref_logps(3, _batches(3, 3), _logprob_fn))
    files[1].write_text("{not json")
    with pytest.raises(KatError) as err:
        load_ref_logps(tmp_path, KEY)
    assert err.value.file == str(files[1]) and "key file is unreadable" in err.value.message
    files[1].write_text(json.dumps({"schema": "something/else"}))
    with pytest.raises(KatError, match="key file is not a kat.ref_logps/1 record"):
        load_ref_logps(tmp_path, KEY)


def test_cached_or_computed_computes_once_and_recomputes_when_stale(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return compute_ref_logps(5, _batches(5, 2), _logprob_fn)

    first, found = cached_or_computed(tmp_path, KEY, 5, compute)
    assert found.state == "missing" and len(calls) == 1
    again, found = cached_or_computed(tmp_path, KEY, 5, compute)
    assert found.state == "hit" and len(calls) == 1 and np.array_equal(again.chosen, first.chosen)
    changed = replace(KEY, reference_sha256="9" * 64)
    _, found = cached_or_computed(tmp_path, changed, 5, compute)
    assert found.state == "stale" and len(calls) == 2
    assert load_ref_logps(tmp_path, changed).state == "hit"  # the recomputed cache replaced the stale one
    _, found = cached_or_computed(tmp_path / "ro", KEY, 5, compute, write=False)
    assert not (tmp_path / "ro" / KEY_FILE).exists() and len(calls) == 3
