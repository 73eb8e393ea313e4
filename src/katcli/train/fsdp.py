"""`--fsdp`: the trained model sharded over torchrun's ranks with PyTorch FSDP2 (`torch.distributed.fsdp.fully_shard`).

Each rank holds 1/world of every parameter, gradient and AdamW state. The units are the layer classes a model names
in `_no_split_modules` (the transformers convention — `LlamaDecoderLayer`, `GPT2Block`, `BertLayer`; kat's GPT names
its `Block`), each sharded on its own, plus the root module (embeddings, final norm, head, a reward head). FSDP2
averages the reduce-scattered gradients over ranks exactly as DDP does, so the loop's loss scaling is unchanged.

Three things FSDP does not do for kat's loop, and this module does:
- `full_parameters(module)`: generation (GRPO rollouts) and evaluation call into the model in ways FSDP's hooks do
  not follow (kat's Engine steps blocks one token at a time, per rank a different number of times). Inside it
  every unit is gathered once, collectively, and stays whole until the block ends — what TRL does for generation
  under ZeRO-3. It costs one full copy of the weights per rank, without gradients or optimizer state.
- `materialize(state)`: a checkpoint holds full tensors (gathered from the shards, in the one order all ranks walk),
  so a run saved under `--fsdp` is an ordinary checkpoint: it loads, evaluates and exports without FSDP.
- `full_optimizer_state` / `load_full_optimizer_state`: AdamW's state in the unsharded layout
  `optimizer.state_dict()` has (integer slots in parameter order), so a run can resume with or without `--fsdp`.

This module knows torch.distributed and module trees; not the loop's cadence, objectives, files or the workspace.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from katcli.errors import KatError


def shard_units(module: nn.Module) -> list[nn.Module]:
    """The submodules sharded on their own: instances of the classes any model in the tree lists in
    `_no_split_modules`, outermost first (a unit inside a unit stays part of the outer one)."""
    names: set[str] = set()
    for sub in module.modules():
        names.update(getattr(sub, "_no_split_modules", None) or ())
    units: list[nn.Module] = []
    inside: set[int] = set()
    for sub in module.modules():
        if sub is module or id(sub) in inside:
            continue
        if type(sub).__name__ in names:
            units.append(sub)
            inside.update(id(m) for m in sub.modules())
    return units


def shard_model(module: nn.Module, *, device: torch.device, world_size: int) -> list[nn.Module]:
    """Shard `module` in place over all ranks (call after the weights are loaded, before the optimizer is built).
    Returns the FSDP units, root last."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if is_sharded(module):  # already sharded (a reference sharded for its pass): nothing to do twice
        return [*_fsdp_units(module)[1:], module]
    units = shard_units(module)
    if not units:
        raise KatError(
            f"--fsdp found no layers to shard in {type(module).__name__} (it names no `_no_split_modules`)",
            hint="train this model without --fsdp (DDP) under torchrun",
        )
    # FSDP warns whenever a unit returns a view (e.g. a reward model's squeezed scores) because an in-place op on
    # it would skip the backward all-gather. kat's losses never modify model outputs in place — the tests compare
    # --fsdp gradients with one process's — so the warning is noise to the user.
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")
    mesh = init_device_mesh(device.type, (world_size,))
    for unit in units:
        fully_shard(unit, mesh=mesh, reshard_after_forward=True)
    # The root stays gathered after its forward: kat computes the output head on the hidden states *after* the
    # forward returns (chunked log-probs), and backward needs those weights right after anyway.
    fully_shard(module, mesh=mesh, reshard_after_forward=False)
    # FSDP initialises its states lazily on the root's first forward; GRPO's first rollout (or an evaluation)
    # calls blocks directly before any root forward, so initialise now, the way that first forward would.
    module._get_fsdp_state()._lazy_init()  # type: ignore[operator]
    return [*units, module]


def _fsdp_units(module: nn.Module) -> list[Any]:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in module.modules() if isinstance(m, FSDPModule)]


def is_sharded(module: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


@contextlib.contextmanager
def full_parameters(module: nn.Module) -> Iterator[None]:
    """Every unit of a sharded `module` gathered (one collective per unit, all ranks together) and kept whole
    until the block ends, so any number of forwards — different on each rank — runs without collectives.
    A no-op for an unsharded module."""
    if not is_sharded(module):
        yield
        return
    units = _fsdp_units(module)
    root = units[0]  # modules() walks the root first
    for unit in units:
        unit.set_reshard_after_forward(False, recurse=False)
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
            unit.set_reshard_after_forward(unit is not root, recurse=False)


def release(module: nn.Module) -> None:
    """Free the weights a sharded frozen model (a reference) still holds gathered after a no-grad forward: its root
    keeps them for the output head, and with no backward nothing else reshards it. A no-op when unsharded."""
    if is_sharded(module):
        module.reshard()  # type: ignore[operator]


def set_gradient_sync(module: nn.Module, enabled: bool) -> None:
    """Gradient accumulation: reduce-scatter only on a step's last micro-batch (FSDP's `no_sync`)."""
    module.set_requires_gradient_sync(enabled)  # type: ignore[operator]


def materialize(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A state dict with every sharded tensor gathered whole, on the CPU (a collective: every rank calls it)."""
    from torch.distributed.tensor import DTensor

    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if isinstance(value, DTensor):
            value = value.full_tensor()
        out[key] = value.detach().cpu() if isinstance(value, torch.Tensor) else value
    return out


def whole(value: torch.Tensor) -> torch.Tensor:
    """A reduced value (e.g. the clipped gradient norm) as a plain tensor, also when FSDP returns it as a DTensor
    (still on the device: reading it is the caller's one synchronisation)."""
    from torch.distributed.tensor import DTensor

    return value.full_tensor() if isinstance(value, DTensor) else value


def state_bytes(params: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer) -> int:
    """Bytes this rank holds of the trained state — parameters, gradients, optimizer state — counting only its own
    shard of a sharded tensor: what `--fsdp` divides by the number of processes."""
    from torch.distributed.tensor import DTensor

    def local(t: torch.Tensor) -> int:
        t = t.to_local() if isinstance(t, DTensor) else t
        return t.numel() * t.element_size()

    total = sum(local(p) + (local(p.grad) if p.grad is not None else 0) for p in params)
    for state in optimizer.state.values():
        total += sum(local(v) for v in state.values() if isinstance(v, torch.Tensor) and v.dim() > 0)
    return total


def _slot_names(module: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    by_id = {id(p): name for name, p in module.named_parameters()}
    return [by_id[id(p)] for group in optimizer.param_groups for p in group["params"]]


def full_optimizer_state(module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state gathered whole, keyed as an unsharded `optimizer.state_dict()` is (a collective; the
    state lands on rank 0, the others get `{}`)."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_optimizer_state_dict,
    )

    # Gathered onto rank 0's CPU only (the one rank that writes); the others get an empty state back.
    full = get_optimizer_state_dict(
        module, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    if not full:
        return {}
    names = _slot_names(module, optimizer)
    slot = {name: i for i, name in enumerate(names)}
    state = {slot[name]: {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
             for name, s in full["state"].items()}
    groups, start = [], 0
    for group, saved in zip(optimizer.param_groups, full["param_groups"], strict=True):
        n = len(group["params"])
        groups.append({**{k: v for k, v in saved.items() if k != "params"}, "params": list(range(start, start + n))})
        start += n
    return {"state": dict(sorted(state.items())), "param_groups": groups}


def load_full_optimizer_state(module: nn.Module, optimizer: torch.optim.Optimizer, saved: Mapping[str, Any]) -> None:
    """Load an unsharded `optimizer.state_dict()` into the optimizer of a sharded `module` (each rank keeps its
    shard of every state tensor)."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_optimizer_state_dict,
    )

    names = _slot_names(module, optimizer)
    if sum(len(g["params"]) for g in saved["param_groups"]) != len(names):
        raise KatError(
            "the checkpoint's optimizer state does not match this model's parameters",
            hint="resume with the same model and flags, or drop --resume to start over",
        )
    state = {names[int(i)]: dict(s) for i, s in saved["state"].items()}
    groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [names[int(i)] for i in g["params"]]}
              for g in saved["param_groups"]]
    set_optimizer_state_dict(
        module, optimizer, {"state": state, "param_groups": groups}, options=StateDictOptions(full_state_dict=True)
    )
    # The hyperparameters exactly as saved (the loader turns `betas` into a list): a resumed run's checkpoints
    # must be byte-identical to the uninterrupted run's.
    for group, saved_group in zip(optimizer.param_groups, saved["param_groups"], strict=True):
        group.update({k: v for k, v in saved_group.items() if k != "params"})
