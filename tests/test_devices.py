"""The one `--device` and `--dtype` rule every command uses (katcli.devices)."""

from __future__ import annotations

import pytest
import torch

import katcli.devices as devices
from katcli.devices import dtype_name, resolve_device, resolve_dtype
from katcli.errors import ConfigError


def test_auto_cpu_cuda(monkeypatch):
    configured = []
    monkeypatch.setattr(devices, "configure_cuda", lambda: configured.append(True))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError) as err:
        resolve_device("cuda")
    assert err.value.message == "--device cuda: CUDA is not available on this machine"
    assert err.value.hint == "use --device cpu (or auto)"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert not configured  # the CPU is never touched by the CUDA settings
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert configured  # a CUDA device comes with the determinism settings
    assert resolve_device("cuda", local_rank=3) == torch.device("cuda", 1)  # torchrun: the local rank's GPU
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"--device must be one of auto, cpu, cuda \(got 'tpu'\)"):
        resolve_device("tpu")


def test_dtype_auto_is_fp32_on_cpu_and_bf16_or_fp16_by_gpu_capability(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bf16", cpu) == torch.bfloat16 and resolve_dtype("fp16", gpu) == torch.float16
    assert resolve_dtype("fp32", gpu) == torch.float32
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))  # H100/H200: native bf16
    assert resolve_dtype("auto", gpu) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))  # V100: emulated bf16
    assert resolve_dtype("auto", gpu) == torch.float16
    assert [dtype_name(d) for d in (torch.bfloat16, torch.float16, torch.float32)] == ["bf16", "fp16", "fp32"]
    with pytest.raises(ConfigError, match=r"--dtype must be one of auto, bf16, fp16, fp32 \(got 'fp8'\)"):
        resolve_dtype("fp8", cpu)


def test_configure_cuda_turns_on_deterministic_algorithms_cublas_workspace_and_tf32(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
              torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        devices.configure_cuda()
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert devices.os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[2], before[3]
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before[4], before[5]
