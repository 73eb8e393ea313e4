"""A training stage's LoRA side (`--lora-r N` on an `hf:` backbone): chains of adapter runs, fresh adapters, records.

- **An adapter run as `--init`** (`adapter_init`): its base model is the one its meta records, refused when gone or
  when its weights' sha256 changed; the run's adapters (and those of the runs it started from) are *merged* into
  that base before anything else. This is TRL's second option for a PEFT reference ("merge the adapter into the
  base model, create another adapter on top", DPO trainer docs, "Reference model considerations with PEFT"): the
  reference is then exactly the merged SFT policy with the new adapters disabled, one copy of the weights, and the
  new adapters start at zero, so the policy equals its reference at step 0. TRL's caveat for that option is merging
  into a quantized base; kat's bases are full precision, so the merge is exact.
- **Fresh adapters** (`add_adapters`): PEFT's `get_peft_model` with the run's `LoraConfig`, seeded; the record
  (`lora` in the run's meta) names the adapted modules, the base (source, directory, sha256) and the earlier
  adapters, copied into the run's `base_adapters/` so the run directory loads on its own.
This module knows runs, metas and the base's files; the adapters themselves are `katcli.model.lora`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from katcli.errors import KatError
from katcli.pipeline.stage import record_input
from katcli.workspace import Workspace


@dataclass
class AdapterInit:
    """An adapter run as `--init`: the base it needs (checked) and the adapters to merge into it, in order."""

    base_dir: Path
    base: dict[str, Any]  # its record: hf source, dir, weights sha256
    adapters: list[Path] = field(default_factory=list)
    encoder: bool = False


def adapter_init(ws: Workspace, run: Any, init_dir: Path) -> AdapterInit:
    """The base model and adapter stack of `--init` when it is a LoRA run, the adapters recorded as inputs (the
    base's files are the caller's to record, as for any `hf:` model)."""
    from katcli.model import lora as A
    from katcli.model.checkpoint import checkpoint_paths, find_last_step
    from katcli.model.run_meta import RunMeta

    meta_file = checkpoint_paths(init_dir, find_last_step(init_dir))["meta"]
    rec = RunMeta.read(meta_file).lora
    if rec is None:
        raise KatError("--init has adapter files but its meta records no LoRA base", file=str(meta_file),
                       hint="re-run the training that wrote it")
    base_dir = A.base_directory(rec["base"], file=meta_file)
    stack = A.stacked_adapters(init_dir)
    for d in stack:
        record_input(ws, run, d / A.ADAPTER_WEIGHTS)
    return AdapterInit(base_dir, dict(rec["base"]), stack, bool(rec.get("encoder")))


def merge_adapters(model: Any, adapters: list[Path]) -> None:
    """Fold saved adapters into `model`'s weights, in order (exact: the base is full precision)."""
    from katcli.model import lora as A

    for d in adapters:
        model.hf = A.merge_into(model.hf, d)


def add_adapters(model: Any, cfg: Any, *, base: dict[str, Any], earlier: list[Path], encoder: bool,
                 reward: bool) -> dict[str, Any]:
    """Fresh adapters on `model` (seeded by `--seed`); returns the run's `lora` record."""
    import torch

    from katcli.model import lora as A

    spec = cfg.lora_spec()
    hf = base.get("hf") or {}
    base_name = hf.get("location") if hf.get("source") in ("hub", "hub-cache") else base.get("dir")
    torch.manual_seed(cfg.seed)
    targets = A.attach(model, spec, base_name=str(base_name or ""))
    model.__dict__["_base_adapters"] = list(earlier)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {**spec.to_json(), "targets": targets, "base": base, "encoder": encoder,
            "base_adapters": len(earlier), "trainable_params": n_train}


def copy_base_adapters(model: Any, out_dir: Path) -> list[Path]:
    """The earlier adapters a chained run merged into its base, copied beside it (`base_adapters/NN/`)."""
    from katcli.model import lora as A

    files = []
    for i, src in enumerate(model.__dict__.get("_base_adapters", [])):
        dst = out_dir / A.BASE_ADAPTERS / f"{i:02d}"
        dst.mkdir(parents=True, exist_ok=True)
        for name in (A.ADAPTER_CONFIG, A.ADAPTER_WEIGHTS):
            shutil.copyfile(src / name, dst / name)
            files.append(dst / name)
    return files
