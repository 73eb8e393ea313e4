"""Test kit: count the calls that make the host wait for the device (`bool(t)`, `int(t)`, `float(t)`, `.item()`,
`.tolist()`, `.numpy()`, `.cpu()` of a tensor).

On the CPU these are free, so a test cannot time them; it counts them instead. A GPU run pays one stall per call,
so a hot loop (a decoded token, a micro-batch) must not make any: tests compare the counts of two runs that differ
only in the number of iterations.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

SYNCING = ("__bool__", "__int__", "__float__", "__index__", "item", "tolist", "numpy", "cpu")


class SyncCount:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __len__(self) -> int:
        return len(self.calls)


@contextlib.contextmanager
def counting_syncs() -> Iterator[SyncCount]:
    """Within the block, every syncing call on a tensor is recorded (by name) in the yielded `SyncCount`."""
    count = SyncCount()
    saved = {name: getattr(torch.Tensor, name) for name in SYNCING}

    def wrap(name: str, real):
        def counted(self, *args, **kwargs):
            count.calls.append(name)
            return real(self, *args, **kwargs)

        return counted

    try:
        for name, real in saved.items():
            setattr(torch.Tensor, name, wrap(name, real))
        yield count
    finally:
        for name, real in saved.items():
            setattr(torch.Tensor, name, real)
