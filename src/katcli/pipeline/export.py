"""`kat export RUN --merge OUT_DIR`: a LoRA run as one plain `save_pretrained` model that transformers (and vLLM) load.

The run is loaded by the one loader (`load_run`: its base, checked by sha256, with the adapters of the runs it started
from merged in, then its own), its adapters are merged into the weights (PEFT's `merge_and_unload`), and the model
and its tokenizer (with the chat template it was trained with) are written into a fresh directory beside `OUT_DIR`,
which is then renamed into place: `OUT_DIR` is complete or absent, and an existing one is never touched unless
`--force`. This module knows runs and directories; the merge itself is `katcli.model.lora`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from katcli.errors import KatError
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace


@dataclass
class ExportResult:
    run: str
    directory: Path
    base_model: str
    lora_r: int
    adapters_merged: int  # the run's own and those of the runs it started from
    n_params: int
    files: list[Path] = field(default_factory=list)


def run_export_merged(ws: Workspace, ref: str, out_dir: Path, *, force: bool = False,
                      progress: ProgressFn = no_progress) -> ExportResult:
    """Merge the LoRA run `ref` into its base and write the result as a `save_pretrained` directory `out_dir`."""
    from katcli.model import lora as A
    from katcli.model.hf import atomic_save_pretrained
    from katcli.model.run_meta import POLICY_KIND, RM_KIND
    from katcli.pipeline.runs import POLICY_STAGES, resolve_run
    from katcli.train.run_dir import load_run, read_run

    name, directory = resolve_run(ws, ref, (*POLICY_STAGES, "rm"), flag="RUN")
    step, meta = read_run(directory, (POLICY_KIND, RM_KIND), hint="pass a run trained with --lora-r N")
    if meta.lora is None:
        raise KatError(
            f"{name} has no LoRA adapters: its directory already is a whole model", file=str(directory),
            hint="load it as it is (transformers' from_pretrained(DIR)); --merge is for runs trained with --lora-r",
        )
    out_dir = out_dir.expanduser().resolve()
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise KatError("the export directory exists and is not empty", file=str(out_dir),
                       hint="pass a new directory, or --force to replace it")
    progress("loading the run", 0, 1)
    loaded = load_run(directory, meta, step=step, role="reward" if meta.kind == RM_KIND else "policy")
    progress("loading the run", 1, 1)
    module = loaded.model
    A.merge_attached(module)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.kat-export-", dir=out_dir.parent))
    try:
        atomic_save_pretrained(module.hf, tmp)
        loaded.tokenizer.save(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    hf = (meta.lora.get("base") or {}).get("hf") or {}
    return ExportResult(
        run=name, directory=out_dir, base_model=str(hf.get("location", "?")), lora_r=int(meta.lora["r"]),
        adapters_merged=len(A.stacked_adapters(directory)), n_params=sum(p.numel() for p in module.parameters()),
        files=sorted(out_dir.iterdir()),
    )
