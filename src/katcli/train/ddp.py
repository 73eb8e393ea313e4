"""Running under `torchrun`: detecting ranks, choosing the backend and the few collectives training needs.

`torchrun --nproc_per_node=N -m katcli train rm ...` starts N copies of the command with `RANK`, `WORLD_SIZE`,
`LOCAL_RANK` and a rendezvous address in the environment. `init_distributed` joins them with NCCL on CUDA and gloo
on CPU; a plain run (no such environment) is a world of one and every collective here is then a no-op. Rank 0 is
the only one that writes (checkpoints, metrics, the manifest); the others compute and stay silent.

This module knows process groups and devices; it knows nothing about models, data or files.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch

from katcli.devices import resolve_device
from katcli.errors import KatError



def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            if self.backend == "nccl":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """In-place sum across ranks (on this rank's device)."""
        if self.distributed:
            import torch.distributed as dist

            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def agree(self, ok: bool) -> bool:
        """True when every rank reports ok; used after setup so one rank's error never leaves the others hanging."""
        if not self.distributed:
            return ok
        flag = torch.tensor([0.0 if ok else 1.0], device=self.device)
        self.all_reduce_sum(flag)
        return bool(flag.item() == 0.0)

    def shutdown(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.owns_group = False


def init_distributed(device_preference: str = "auto", *, timeout_s: float = 1800.0) -> DistContext:
    """Join torchrun's process group when launched by it; otherwise a single-process context."""
    world = env_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    device = resolve_device(device_preference, local_rank)
    if world <= 1:
        return DistContext(device=device)
    import torch.distributed as dist

    if "MASTER_ADDR" not in os.environ:
        raise KatError(
            f"WORLD_SIZE={world} is set but there is no rendezvous address (MASTER_ADDR)",
            hint="launch multi-process training with `torchrun --nproc_per_node=N -m katcli train rm ...`",
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns = False
    if not dist.is_initialized():
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s), **kwargs)
        owns = True
    return DistContext(
        rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
        backend=backend, device=device, owns_group=owns,
    )
