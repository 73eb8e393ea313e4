"""Which device a `--device auto|cpu|cuda` flag means, decided in one place for every command.

`auto` is CUDA when a GPU is visible, else the CPU; `cuda` without a GPU is a flag error; under torchrun each
process takes the GPU of its local rank. A leaf module (like `errors`): every layer may use it, it uses none, and
torch is imported only when a device is actually resolved, so `kat --help` stays fast.
"""

from __future__ import annotations

import os

from typing import TYPE_CHECKING

from katcli.errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")


def check_device(preference: str) -> None:
    """Refuse anything but auto, cpu or cuda (cheap: no torch import)."""
    if preference not in DEVICES:
        raise ConfigError(f"--device must be one of {', '.join(DEVICES)} (got {preference!r})")


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """The device a `--device` value means on this machine (for this local rank)."""
    check_device(preference)
    import torch

    cuda = torch.cuda.is_available()
    if preference == "cuda" and not cuda:
        raise ConfigError("--device cuda: CUDA is not available on this machine", hint="use --device cpu (or auto)")
    if preference == "cpu" or not cuda:
        return torch.device("cpu")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def available_memory() -> int | None:
    """Bytes of memory the system can still give (MemAvailable on Linux), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
