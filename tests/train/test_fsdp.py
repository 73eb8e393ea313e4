"""`--fsdp`: which layers are sharded, the single-process refusal, and two gloo processes under torchrun computing
what one process computes, saving an ordinary checkpoint and resuming exactly (with or without --fsdp)."""

from __future__ import annotations

import json

import pytest
import torch
from rmkit import make_workspace, planted_pairs
from torchrunkit import torchrun

from katcli.errors import ConfigError
from katcli.model.gpt import GPT, Block, GPTConfig
from katcli.pipeline.train_sft import TrainSFTConfig, run_train_sft
from katcli.train.fsdp import shard_units
from katcli.train.reward_model import RewardModel
from katcli.workspace import Manifest

FLAGS = ["--depth", "1", "--max-steps", "4", "--batch-size", "8", "--micro-batch-size", "2", "--max-len", "64",
         "--val-ratio", "0.2", "--device", "cpu", "--eval-every", "2", "--save-every", "2", "--lr", "1e-3"]
SINGLE = {"depth": 1, "max_steps": 4, "batch_size": 8, "micro_batch_size": 2, "max_len": 64, "val_ratio": 0.2,
          "device": "cpu", "eval_every": 2, "save_every": 2, "lr": 1e-3, "threads": 1}


def _steps(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"type"' not in x]


def test_the_units_are_the_layers_each_model_names_as_unsplittable():
    gpt = GPT(GPTConfig.from_depth(2, vocab_size=64, sequence_len=32))
    assert shard_units(gpt) == list(gpt.transformer.h) and all(isinstance(u, Block) for u in shard_units(gpt))
    rm = RewardModel(gpt)  # the GPT inside names its Block: the reward model's layers are found through it
    assert shard_units(rm) == list(gpt.transformer.h)

    class Outer(torch.nn.Module):
        _no_split_modules = ("Outer", "Inner")

        def __init__(self, inner=True):
            super().__init__()
            self.inner = Inner() if inner else None
            self.lin = torch.nn.Linear(2, 2)

    class Inner(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)

    root = torch.nn.Sequential(Outer(), Inner())
    units = shard_units(root)
    # The Inner inside the Outer stays part of it (one unit), the Inner beside it is a unit of its own.
    assert units == [root[0], root[1]]


def test_hf_models_shard_their_decoder_or_encoder_layers(tmp_path):
    from hfkit import build_model, train_tokenizer
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    pairs = planted_pairs(10)
    llama = AutoModelForCausalLM.from_pretrained(str(build_model("llama", train_tokenizer(pairs, encoder=False),
                                                                 tmp_path / "llama")))
    assert [type(u).__name__ for u in shard_units(llama)] == ["LlamaDecoderLayer"] * llama.config.num_hidden_layers
    bert = AutoModelForSequenceClassification.from_pretrained(
        str(build_model("bert", train_tokenizer(pairs, encoder=True), tmp_path / "bert")), num_labels=1)
    names = [type(u).__name__ for u in shard_units(bert)]
    assert names == ["BertEmbeddings"] + ["BertLayer"] * bert.config.num_hidden_layers


def test_fsdp_in_a_single_process_is_refused_naming_torchrun(tmp_path):
    ws = make_workspace(tmp_path / "ws", planted_pairs(30), with_weights=False)
    with pytest.raises(ConfigError) as err:
        run_train_sft(ws, TrainSFTConfig(fsdp=True, **SINGLE))
    assert err.value.message == "--fsdp shards the model over torchrun's processes, but this is a single process"
    assert err.value.hint == (
        "launch it as `torchrun --nproc_per_node=N -m katcli train sft … --fsdp`, or drop --fsdp"
    )


@pytest.mark.slow
def test_two_fsdp_processes_train_like_one_and_save_an_ordinary_checkpoint(tmp_path):
    from katcli.train.run_dir import load_run

    ws = make_workspace(tmp_path / "ws", planted_pairs(60))
    proc = torchrun(ws, "train", "sft", "--name", "fsdp", *FLAGS, "--fsdp")
    assert proc.stdout.count("Trained 4 steps on cpu × 2 (FSDP):") == 1  # rank 1 prints nothing
    run_dir = ws.abs("sft_checkpoints/fsdp")
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "meta_000004.json", "metrics.jsonl", "model_000004.pt", "optim_000004.pt", "tokenizer.json",
    ]
    single = run_train_sft(ws, TrainSFTConfig(name="single", **SINGLE))
    # Micro-batches of 2 on each rank (accumulation without a reduce-scatter until the last): the global step.
    for a, b in zip(_steps(single.directory), _steps(run_dir), strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
        assert a["tokens"] == b["tokens"]
    evals = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"type"' in x]
    assert [e["step"] for e in evals] == [2, 4]  # evaluated on the gathered weights
    one_eval = [json.loads(x) for x in (single.directory / "metrics.jsonl").read_text().splitlines() if '"type"' in x]
    assert evals[-1]["overall"]["nll"] == pytest.approx(one_eval[-1]["overall"]["nll"], abs=1e-5)
    # Whole tensors, not one rank's shard: the checkpoint is a plain GPT and equals one process's weights.
    sharded, plain = load_run(run_dir).model.state_dict(), load_run(single.directory).model.state_dict()
    for name, p in plain.items():
        assert type(sharded[name]) is torch.Tensor and sharded[name].shape == p.shape
        assert torch.allclose(sharded[name], p, atol=1e-6), name
    optim = torch.load(run_dir / "optim_000004.pt", weights_only=False)["optimizer"]
    one_optim = torch.load(single.directory / "optim_000004.pt", weights_only=False)["optimizer"]
    assert sorted(optim["state"]) == sorted(one_optim["state"])  # the unsharded layout: integer slots
    for slot, state in one_optim["state"].items():
        assert torch.allclose(optim["state"][slot]["exp_avg_sq"], state["exp_avg_sq"], atol=1e-8)
    meta = json.loads((run_dir / "meta_000004.json").read_text())
    assert meta["training"]["fsdp"] is True and meta["training"]["world_size"] == 2
    stats = Manifest.load(ws.manifest_path).runs["sft/fsdp"].stats
    assert stats["fsdp"] is True and stats["world_size"] == 2
    assert "fsdp" not in Manifest.load(ws.manifest_path).runs["sft/single"].stats
    # Each process holds half of the weights, gradients and AdamW state (up to the rounding of odd shapes).
    whole = Manifest.load(ws.manifest_path).runs["sft/single"].stats["state_mib_per_process"]
    assert stats["state_mib_per_process"] == pytest.approx(whole / 2, rel=0.02)
    assert f"{stats['state_mib_per_process']:,.1f} MiB of weights, gradients and optimizer state per process" in proc.stdout


@pytest.mark.slow
def test_an_interrupted_fsdp_run_resumes_exactly_and_also_without_fsdp(tmp_path):
    ws = make_workspace(tmp_path / "ws", planted_pairs(60))
    torchrun(ws, "train", "sft", "--name", "full", *FLAGS, "--fsdp")
    stopped = torchrun(ws, "train", "sft", "--name", "part", *FLAGS, "--fsdp", stop_after_save=2, check=False)
    assert stopped.returncode != 0
    part = ws.abs("sft_checkpoints/part")
    assert (part / "model_000002.pt").exists() and not (part / "model_000004.pt").exists()
    (tmp_path / "copy").mkdir()
    for f in part.iterdir():  # the same step-2 checkpoint, resumed below by one process without --fsdp
        (tmp_path / "copy" / f.name).write_bytes(f.read_bytes())
    torchrun(ws, "train", "sft", "--name", "part", *FLAGS, "--fsdp", "--resume")
    full = ws.abs("sft_checkpoints/full")
    for name in ("model_000004.pt", "optim_000004.pt", "metrics.jsonl"):
        assert (part / name).read_bytes() == (full / name).read_bytes(), name
    # The step-2 checkpoint is an ordinary one: one process resumes it without --fsdp and lands on the same run.
    for f in list(part.iterdir()):
        f.unlink()
    for f in (tmp_path / "copy").iterdir():
        (part / f.name).write_bytes(f.read_bytes())
    alone = run_train_sft(ws, TrainSFTConfig(name="part", resume=True, **SINGLE))
    assert alone.resumed_from == 2 and alone.step == 4
    for a, b in zip(_steps(alone.directory), _steps(full), strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
