"""The one `--device` rule every command uses (katcli.devices)."""

from __future__ import annotations

import pytest
import torch

from katcli.devices import resolve_device
from katcli.errors import ConfigError


def test_auto_cpu_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError) as err:
        resolve_device("cuda")
    assert err.value.message == "--device cuda: CUDA is not available on this machine"
    assert err.value.hint == "use --device cpu (or auto)"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda", local_rank=3) == torch.device("cuda", 1)  # torchrun: the local rank's GPU
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"--device must be one of auto, cpu, cuda \(got 'tpu'\)"):
        resolve_device("tpu")
