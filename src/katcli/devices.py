"""Which device a `--device auto|cpu|cuda` flag means, and which precision a `--dtype` flag means on it.

`auto` is CUDA when a GPU is visible, else the CPU; `cuda` without a GPU is a flag error; under torchrun each
process takes the GPU of its local rank. Resolving a CUDA device also makes CUDA as reproducible as it can be
(`configure_cuda`): deterministic algorithms where PyTorch has them (a warning, not a crash, where it has none),
cuBLAS's fixed workspace, no cuDNN autotuning, and TF32 for the float32 matmuls that remain.

`--dtype auto` computes in float32 on the CPU and, on CUDA, under bf16 autocast when the GPU has native bf16, else
fp16 (whose training needs a gradient scaler: `katcli.train.loop`). Parameters stay float32 in every case.

A leaf module (like `errors`): every layer may use it, it uses none, and torch is imported only when a device or
precision is actually resolved, so `kat --help` stays fast.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from katcli.errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "bf16", "fp16", "fp32")
_TORCH_DTYPE = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
# cuBLAS's documented setting for reproducible results (one fixed workspace per stream instead of a pool).
CUBLAS_WORKSPACE = ":4096:8"


def check_device(preference: str) -> None:
    """Refuse anything but auto, cpu or cuda (cheap: no torch import)."""
    if preference not in DEVICES:
        raise ConfigError(f"--device must be one of {', '.join(DEVICES)} (got {preference!r})")


def check_dtype(preference: str) -> None:
    """Refuse anything but auto, bf16, fp16 or fp32 (cheap: no torch import)."""
    if preference not in DTYPES:
        raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)} (got {preference!r})")


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """The device a `--device` value means on this machine (for this local rank)."""
    check_device(preference)
    import torch

    cuda = torch.cuda.is_available()
    if preference == "cuda" and not cuda:
        raise ConfigError("--device cuda: CUDA is not available on this machine", hint="use --device cpu (or auto)")
    if preference == "cpu" or not cuda:
        return torch.device("cpu")
    configure_cuda()
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


def resolve_dtype(preference: str, device: torch.device) -> torch.dtype:
    """The compute dtype a `--dtype` value means on `device` (`auto`: fp32 on CPU; bf16, else fp16, on CUDA)."""
    check_dtype(preference)
    import torch

    if preference != "auto":
        return getattr(torch, _TORCH_DTYPE[preference])
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if native_bf16(device) else torch.float16


def native_bf16(device: torch.device) -> bool:
    """Whether this GPU computes bf16 natively (Ampere and later), not by emulation."""
    import torch

    return torch.cuda.get_device_capability(device)[0] >= 8


def dtype_name(dtype: torch.dtype) -> str:
    """`bf16`, `fp16` or `fp32`: the `--dtype` word for a compute dtype."""
    return {v: k for k, v in _TORCH_DTYPE.items()}[str(dtype).removeprefix("torch.")]


def device_label(device: torch.device) -> str:
    """What identifies the numbers a device computes: `cpu`, or `cuda:<GPU model>` (another GPU model runs other
    kernels, so other bits)."""
    if device.type != "cuda":
        return device.type
    import torch

    return f"cuda:{torch.cuda.get_device_name(device)}"


def configure_cuda() -> None:
    """Make CUDA computations as reproducible as PyTorch allows; idempotent, called before the first CUDA kernel.

    An op with no deterministic CUDA implementation warns (`warn_only=True`) instead of stopping a long run; the
    README's determinism paragraph and `bench/device_check.sh` say which outputs stay byte-identical."""
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)  # read when cuBLAS first starts
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    # float32 matmuls (--dtype fp32, and fp32 ops outside autocast) on tensor cores: ~8x faster, 10-bit mantissa
    # inputs with fp32 accumulation, and as deterministic as full fp32.
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
