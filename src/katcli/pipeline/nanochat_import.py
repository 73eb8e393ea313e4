"""The `model` stage, nanochat flavour: import a nanochat checkpoint + tokenizer into `models/<name>/`.

Inputs are outside the workspace (the nanochat base dir) and are recorded as external inputs with their checksums:
the checkpoint's `model_<step>.pt`, its `meta_<step>.json` and `tokenizer/tokenizer.pkl`. Outputs, written through
`StageRun` (temp files, moved into place together, then the manifest):

    models/<name>/model_<step>.pt        fp32 state dict, kat/nanochat key names
    models/<name>/meta_<step>.json       model_config, tokenizer_sha256, where it came from, input checksums
    models/<name>/tokenizer/tokenizer.json

`tokenizer.pkl` is the one file kat ever unpickles, with a restricted unpickler, and only in this stage; the result
says so, and so does the CLI. Converting, key checking and unpickling are `katcli.model.nanochat`; this module only
wires files, parameters and the manifest. It knows nothing about Typer or Rich.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from katcli.errors import ConfigError, KatError
from katcli.model.run_meta import NANOCHAT_KIND
from katcli.pipeline.stage import StageRun
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P
from katcli.workspace.atomic import remove_quietly
from katcli.workspace.hashing import sha256_file

STAGE = "model"
_TASK = "importing nanochat model"
SOURCE_NAMES = ("base", "mid", "sft")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
UNPICKLE_NOTE = (
    "unpickled {path} — the only file kat ever unpickles, and only in `kat import nanochat`; "
    "a restricted unpickler that accepts nothing but tiktoken's Encoding state"
)


@dataclass(frozen=True)
class ImportConfig:
    base_dir: Path
    source: str = "sft"
    tag: str | None = None
    step: int | None = None
    name: str | None = None
    force: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.source not in SOURCE_NAMES:
            raise ConfigError(f"--source must be one of {', '.join(SOURCE_NAMES)}, got {self.source!r}")
        if self.step is not None and self.step < 0:
            raise ConfigError("--step must be 0 or more")
        if self.name is not None and not _NAME_RE.match(self.name):
            raise ConfigError("--name must be letters, digits, '.', '_' or '-' (no slashes), starting alphanumeric")
        if self.tag is not None and ("/" in self.tag or self.tag in ("", ".", "..")):
            raise ConfigError("--tag must be a directory name such as d20")


@dataclass(frozen=True)
class ImportResult:
    name: str
    directory: Path
    model_path: Path
    meta_path: Path
    tokenizer_path: Path
    source: str
    tag: str
    step: int
    n_params: int
    model_config: dict[str, int]
    vocab_size: int
    tokenizer_sha256: str
    notes: list[str] = field(default_factory=list)
    forced_over: list[str] = field(default_factory=list)


def run_nanochat_import(ws: Workspace, cfg: ImportConfig, *, progress: ProgressFn = no_progress) -> ImportResult:
    """Convert a nanochat model into `models/<name>/` and record it as the `model/<name>` stage."""
    from katcli.model.nanochat import read_nanochat

    cfg.validate()
    base = Path(cfg.base_dir).expanduser().resolve()
    nc = read_nanochat(base, source=cfg.source, tag=cfg.tag, step=cfg.step)
    name = cfg.name or f"nanochat-{nc.source}-{nc.tag}"
    directory_rel = f"{P.MODELS_DIR}/{name}"
    directory = ws.abs(directory_rel)
    existing = sorted(p for p in directory.rglob("*") if p.is_file()) if directory.is_dir() else []
    if existing and not cfg.force:
        raise KatError(
            f"{directory_rel}/ already exists",
            hint="pass --force to replace it, or choose another --name",
        )

    # Progress starts once the checkpoint is read and accepted, so a refusal prints no half-drawn bar.
    progress(_TASK, 0, 3)
    n_params = _probe(nc)
    progress(_TASK, 1, 3)
    rels = {"model": f"{directory_rel}/model_{nc.step:06d}.pt", "meta": f"{directory_rel}/meta_{nc.step:06d}.json",
            "tokenizer": f"{directory_rel}/{P.TOKENIZER}"}
    params: dict[str, Any] = {"base_dir": str(base), "source": nc.source, "tag": nc.tag, "step": nc.step}
    with StageRun(ws, STAGE, name=name, params=params, force=cfg.force) as run:
        _write(run, nc, base, rels, n_params, progress)
        forced_over = list(run.forced_over)
    progress(_TASK, 3, 3)
    # With --force, files of an earlier import (other steps) would shadow this one as "the latest step".
    keep = {ws.abs(rel) for rel in rels.values()}
    for stale in existing:
        if stale not in keep:
            remove_quietly(stale)
    return ImportResult(
        name=name, directory=directory, model_path=ws.abs(rels["model"]), meta_path=ws.abs(rels["meta"]),
        tokenizer_path=ws.abs(rels["tokenizer"]), source=nc.source, tag=nc.tag, step=nc.step, n_params=n_params,
        model_config=nc.config.to_dict(), vocab_size=nc.tokenizer.vocab_size, tokenizer_sha256=nc.tokenizer.sha256(),
        notes=[UNPICKLE_NOTE.format(path=nc.tokenizer_path)], forced_over=forced_over,
    )


def _probe(nc: Any) -> int:
    """A tiny forward pass proves the converted weights run before anything is written; their parameter count."""
    import torch

    from katcli.model.gpt import GPT

    model = GPT.from_state_dict(nc.config, nc.state, source=str(nc.model_path)).eval()
    probe = nc.tokenizer.render_for_completion([{"role": "user", "content": "Hello!"}])
    with torch.no_grad():
        logits = model(torch.tensor([probe[-min(len(probe), nc.config.sequence_len):]]))
    if not bool(torch.isfinite(logits).all()):
        raise KatError("the converted model produces non-finite logits", file=str(nc.model_path))
    return model.num_params()


def _write(run: Any, nc: Any, base: Path, rels: dict[str, str], n_params: int, progress: ProgressFn) -> None:
    """The import's files (weights, its `RunMeta`, the tokenizer) and its record, inside the stage run."""
    from katcli.model.checkpoint import meta_bytes, write_state
    from katcli.model.run_meta import RunMeta

    src_paths = {"model": nc.model_path, "meta": nc.meta_path, "tokenizer": nc.tokenizer_path}
    for path in src_paths.values():
        run.external_input(path)
    checksums = {key: sha256_file(path) for key, path in src_paths.items()}
    progress(_TASK, 2, 3)
    tok_sha = nc.tokenizer.sha256()
    imported_from = {"kind": NANOCHAT_KIND, "base_dir": str(base), "source": nc.source, "tag": nc.tag,
                     "step": nc.step, "files": {k: str(v) for k, v in src_paths.items()}}
    meta = RunMeta(kind=None, step=nc.step, model_config=nc.config.to_dict(), tokenizer_sha256=tok_sha,
                   inputs=checksums, extra={"imported_from": imported_from, "nanochat_meta": {
                       k: v for k, v in nc.nanochat_meta.items() if k != "model_config"}})
    with open(run.output(rels["model"]), "wb") as fh:
        write_state(nc.state, fh)
    run.output(rels["meta"]).write_bytes(meta_bytes(meta.to_json()))
    run.output(rels["tokenizer"]).write_bytes(nc.tokenizer.to_json_bytes())
    run.describe(rels["model"], shape=[n_params])
    run.describe(rels["tokenizer"], rows=nc.tokenizer.vocab_size)
    run.stats.update(
        {
            "n_params": n_params, "model_config": nc.config.to_dict(), "vocab_size": nc.tokenizer.vocab_size,
            "tokenizer_sha256": tok_sha, "source": nc.source, "tag": nc.tag, "step": nc.step,
            "unpickled": str(nc.tokenizer_path),
        }
    )
