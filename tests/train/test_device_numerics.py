"""What a GPU run must keep of kat's promises, checked on the CPU (issue 29): the reference cache names the device,
precision and batch it was computed with; a training step reads its statistics back once, not per micro-batch;
`--dtype` picks the autocast precision (fp16 with a gradient scaler), recorded only when set."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from modelkit import one_torch_thread  # noqa: F401  (autouse fixture: tiny models run on one thread)
from rmkit import make_workspace, planted_pairs
from synckit import counting_syncs

from katcli.errors import ConfigError
from katcli.pipeline.train_dpo import run_train_dpo, tiny_dpo_config
from katcli.pipeline.train_rm import run_train_rm, tiny_config
from katcli.pipeline.train_sft import TrainSFTConfig, run_train_sft, tiny_sft_config
from katcli.train.loop import TrainingLoop
from katcli.train.ref_cache import KEY_FILE
from katcli.workspace import Manifest
from katcli.workspace import paths as P

TINY = dict(max_len=64, max_steps=2, batch_size=8, val_ratio=0.2)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("numerics"), planted_pairs(40))


# ------------------------------------------------------------------------------------------- the reference cache


@pytest.mark.slow
def test_a_cache_computed_on_another_device_or_dtype_is_not_reused(ws):
    first = run_train_dpo(ws, tiny_dpo_config(name="cpu-run", depth=1, **TINY))
    key = json.loads((first.directory / KEY_FILE).read_text())["key"]
    assert (key["device"], key["dtype"], key["batch_size"]) == ("cpu", "fp32", 8)
    again = run_train_dpo(ws, tiny_dpo_config(name="cpu-again", depth=1, **TINY))
    assert Manifest.load(ws.manifest_path).runs["dpo/cpu-again"].stats["ref_cache"] == "reused"
    # The same cache, as a GPU run would have written it: the numbers differ, so it must not be reused.
    record = json.loads((first.directory / KEY_FILE).read_text())
    record["key"].update(device="cuda:NVIDIA H200", dtype="bf16")
    for name in ("cpu-run", "cpu-again"):
        (ws.abs(f"{P.DPO_DIR}/{name}") / KEY_FILE).write_text(json.dumps(record))
    run_train_dpo(ws, tiny_dpo_config(name="third", depth=1, **TINY))
    assert Manifest.load(ws.manifest_path).runs["dpo/third"].stats["ref_cache"] == "computed"
    assert again.directory.is_dir()


# ------------------------------------------------------------------------------------------- host syncs per step


def _syncs_per_step(monkeypatch, train) -> list[list[str]]:
    calls: list[list[str]] = []
    real_step = TrainingLoop._step

    def counted(self, model, step):
        with counting_syncs() as count:
            record = real_step(self, model, step)
        calls.append(count.calls)
        return record

    with monkeypatch.context() as patch:
        patch.setattr(TrainingLoop, "_step", counted)
        train()
    return calls


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["rm", "sft", "dpo"])
def test_a_step_reads_its_statistics_back_once_whatever_the_number_of_micro_batches(ws, monkeypatch, objective):
    def run(micro: int):
        name = f"syncs-{objective}-{micro}"
        if objective == "rm":
            return lambda: run_train_rm(ws, tiny_config(name=name, micro_batch_size=micro, **TINY))
        if objective == "sft":
            return lambda: run_train_sft(ws, tiny_sft_config(name=name, micro_batch_size=micro, **TINY))
        return lambda: run_train_dpo(ws, tiny_dpo_config(name=name, depth=1, micro_batch_size=micro, **TINY))

    one = _syncs_per_step(monkeypatch, run(8))  # one micro-batch per step
    eight = _syncs_per_step(monkeypatch, run(1))  # eight per step
    # The same calls whether a step has one micro-batch or eight: nothing per micro-batch.
    assert one == eight, (one, eight)


def test_the_grpo_loss_reads_nothing_back():
    from katcli.train.grpo_losses import GRPOConfig, grpo_loss

    gen = torch.Generator().manual_seed(0)
    logp = torch.randn(4, 6, generator=gen, requires_grad=True)
    mask = torch.ones(4, 6)
    mask[1, 4:] = 0
    with counting_syncs() as count:
        out = grpo_loss(logp, logp.detach() + 0.1, logp.detach() - 0.2, torch.tensor([1.0, -1.0, 0.5, 0.0]), mask,
                        GRPOConfig(beta=0.1), max_new_tokens=6, denominator=1.0)
    assert len(count) == 0, count.calls
    assert out.stats()["kl"] > 0 and float(out.tokens) == 22.0


# ------------------------------------------------------------------------------------------- --dtype


def _config(ws, name):
    return json.loads(ws.abs(f"{P.SFT_DIR}/{name}/meta_000002.json").read_text())


@pytest.mark.slow
def test_dtype_is_recorded_only_when_set_and_changes_the_cpu_numbers_only_then(ws):
    run_train_sft(ws, tiny_sft_config(name="auto", **TINY))
    run_train_sft(ws, tiny_sft_config(name="fp32", dtype="fp32", **TINY))
    run_train_sft(ws, tiny_sft_config(name="bf16", dtype="bf16", **TINY))
    auto, fp32, bf16 = (_config(ws, n) for n in ("auto", "fp32", "bf16"))
    assert "dtype" not in auto["config"] and "dtype" not in auto["training"]  # records stay as they always were
    assert fp32["config"]["dtype"] == "fp32" and "dtype" not in fp32["training"]
    assert bf16["config"]["dtype"] == "bf16" and bf16["training"]["dtype"] == "bf16"
    weights = {n: ws.abs(f"{P.SFT_DIR}/{n}/model_000002.pt").read_bytes() for n in ("auto", "fp32", "bf16")}
    assert weights["auto"] == weights["fp32"] != weights["bf16"]  # bf16 autocast really ran


@pytest.mark.slow
def test_fp16_trains_with_a_gradient_scaler_and_resumes_exactly(ws, tmp_path):
    from torchrunkit import _stop_after_save  # noqa: F401  (the kit's Ctrl-C helper is for subprocesses)

    import katcli.train.loop as loop_mod
    from katcli.errors import InterruptedRun

    cfg = dict(TINY, max_steps=4, save_every=2, dtype="fp16")
    whole = run_train_sft(ws, tiny_sft_config(name="fp16", **cfg))
    optim = torch.load(whole.directory / "optim_000004.pt", weights_only=True)
    assert optim["grad_scaler"]["scale"] > 0  # the scaler's state travels with the checkpoint
    files = {p.name: p.read_bytes() for p in whole.directory.iterdir() if p.suffix in (".pt", ".jsonl")}

    real_save = loop_mod.TrainingLoop._save

    def save_then_stop(self, at, report):
        out = real_save(self, at, report)
        if at == 2:
            raise KeyboardInterrupt
        return out

    loop_mod.TrainingLoop._save = save_then_stop
    try:
        with pytest.raises(InterruptedRun):
            run_train_sft(ws, tiny_sft_config(name="fp16-resumed", **cfg))
    finally:
        loop_mod.TrainingLoop._save = real_save
    resumed = run_train_sft(ws, tiny_sft_config(name="fp16-resumed", resume=True, **cfg))
    assert {p.name: p.read_bytes() for p in resumed.directory.iterdir() if p.suffix in (".pt", ".jsonl")} == files
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_dtype_flag_errors():
    with pytest.raises(ConfigError, match=r"--dtype must be one of auto, bf16, fp16, fp32 \(got 'half'\)"):
        TrainSFTConfig(dtype="half")
    with pytest.raises(ConfigError) as err:
        TrainSFTConfig(dtype="fp16", fsdp=True)
    assert err.value.message == "--dtype fp16 cannot be combined with --fsdp"
    assert err.value.hint == "use --dtype bf16 or fp32 with --fsdp"
