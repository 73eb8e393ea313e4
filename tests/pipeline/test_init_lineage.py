"""An `--init` model that trained on this run's held-out prompts: counted through the whole --init chain, refused
unless --force (then recorded as forced), and no false alarm for the same split or a subset of it."""

from __future__ import annotations

import pytest
import torch
from rmkit import make_workspace, planted_pairs

from katcli.errors import KatError
from katcli.pipeline.heldout import TrainedSplit, seen_heldout
from katcli.pipeline.train_rm import run_train_rm, tiny_config
from katcli.pipeline.train_sft import run_train_sft, tiny_sft_config
from katcli.train.split import is_heldout, split_pairs
from katcli.workspace import Manifest


def test_seen_heldout_counts_the_prompts_an_ancestor_split_put_in_training():
    prompts = [f"p{i}" for i in range(400)]
    held = [p for p in prompts if is_heldout(p, 3, 0.2)]
    same = TrainedSplit("a", 3, 0.2)
    wider = TrainedSplit("b", 3, 0.5)  # same seed, larger held-out share: ours is a subset of its held-out set
    other = TrainedSplit("c", 0, 0.2)
    found = seen_heldout(held, [same, wider, other])
    expected = sum(1 for p in held if not is_heldout(p, 0, 0.2))
    assert found == [(other, expected)] and 0.6 * len(held) < expected <= len(held)


@pytest.fixture
def ws(tmp_path):
    torch.set_num_threads(1)
    ws = make_workspace(tmp_path / "ws", planted_pairs(80))
    run_train_sft(ws, tiny_sft_config(max_steps=2, max_len=64))  # --seed 0 --val-ratio 0.2
    return ws


def test_an_init_trained_on_the_heldout_prompts_is_refused_naming_the_split(ws):
    pairs_pids = [p["prefix_id"] for p in planted_pairs(80)]
    held = {pairs_pids[i] for i in split_pairs(pairs_pids, seed=3, val_ratio=0.1).heldout}
    seen = sum(1 for p in held if not is_heldout(p, 0, 0.2))
    with pytest.raises(KatError) as err:
        run_train_rm(ws, tiny_config(init="sft/uniform", depth=None, max_steps=1, max_len=64, seed=3, val_ratio=0.1))
    assert err.value.message == (
        f"--init sft/uniform: {seen} of this run's {len(held)} held-out prompts are training prompts of sft/uniform "
        "(trained with --seed 0 --val-ratio 0.2; this run holds out by --seed 3 --val-ratio 0.1)"
    )
    assert err.value.hint == (
        "train with --seed 0 --val-ratio 0.2, the split it was trained on, so held-out prompts stay unseen "
        "(or pass --force to evaluate on them anyway, recorded)"
    )
    assert not ws.abs("rm_checkpoints/uniform").exists()
    # The same seed with a smaller held-out share holds out a subset of the SFT run's held-out prompts: accepted.
    res = run_train_rm(ws, tiny_config(init="sft/uniform", depth=None, max_steps=1, max_len=64, val_ratio=0.1))
    assert res.step == 1 and not any("optimistic" in n for n in res.notes)


def test_the_chain_is_followed_and_force_records_the_leak(ws):
    # sft/second starts from sft/uniform (--seed 0) with --seed 5: a leak, accepted with --force and recorded.
    res = run_train_sft(ws, tiny_sft_config(name="second", init="sft/uniform", depth=None, max_steps=1, max_len=64,
                                            seed=5, force=True))
    note = next(n for n in res.notes if n.startswith("held-out results are optimistic: "))
    assert "training prompts of sft/uniform (trained with --seed 0 --val-ratio 0.2" in note
    run = Manifest.load(ws.manifest_path).runs["sft/second"]
    assert run.forced and any("held-out prompts are training prompts of sft/uniform" in x for x in run.forced_over)
    # A run from sft/second with sft/second's own split still holds out prompts sft/uniform trained on: the walk
    # goes up the chain and names the grandparent by its recorded path.
    with pytest.raises(KatError, match=r"^--init sft/second: \d+ of this run's \d+ held-out prompts are training "
                                       r"prompts of sft_checkpoints/uniform \(trained with --seed 0 "):
        run_train_sft(ws, tiny_sft_config(name="third", init="sft/second", depth=None, max_steps=1, max_len=64, seed=5))
