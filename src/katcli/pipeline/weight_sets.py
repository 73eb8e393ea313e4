"""Named sets of density weights: several weightings of the same embeddings in one workspace.

`kat embed` (no `--name`) writes the default set beside the embeddings, as it always has. `kat embed --name sharp
--power 2` writes `data/embeddings_offline/weights/sharp/{density_weights.npy,weights_metadata.json}` from the
embeddings already there — no re-encode: only the neighbour search and the weighting (`--k`, `--eps`, `--power`,
`--max-ratio`, `--index`, …) run again. A set is recorded as the named stage `weights/<name>`, with the embeddings
and ids as its checked inputs, so a re-encode that changes them makes it stale. The model and the text mode are
the embeddings' own: a named set that asks for others is refused (they would need other embeddings).

`weight_set_files` is how training, evaluation and the report find a set's files by name. This module knows the
files and the manifest, not Typer or Rich.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from katcli.errors import ConfigError, KatError
from katcli.pipeline.embed import check_set_name
from katcli.pipeline.stage import StageRun
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P

STAGE = "weights"
METADATA_FORMAT = "kat-weights/1"


@dataclass(frozen=True)
class WeightSetFiles:
    name: str  # "default" or the set's --name
    weights: str  # workspace-relative paths
    ids: str
    metadata: str


def weight_set_files(ws: Workspace, name: str | None, *, flag: str = "--weights") -> WeightSetFiles:
    """The files of weight set `name` (None: the default); KatError naming the sets there are when it is absent."""
    name = name or P.DEFAULT_WEIGHT_SET
    check_set_name(name, flag)
    files = WeightSetFiles(name, P.weight_set_weights(name), P.EMBED_IDS, P.weight_set_metadata(name))
    if name != P.DEFAULT_WEIGHT_SET and not ws.abs(files.weights).is_file():
        have = ", ".join(weight_set_names(ws)) or "none"
        raise KatError(f"{flag} {name}: no such weight set (sets: {have})",
                       hint=f"make it with `kat embed --name {name}` (plus the --k/--power/--max-ratio you want)")
    return files


def weight_set_names(ws: Workspace) -> list[str]:
    """The sets present: "default" when `kat embed` wrote it, then the named ones, sorted."""
    names = [P.DEFAULT_WEIGHT_SET] if ws.abs(P.DENSITY_WEIGHTS).is_file() else []
    root = ws.abs(P.WEIGHT_SETS_DIR)
    if root.is_dir():
        names += sorted(d.name for d in root.iterdir() if (d / "density_weights.npy").is_file())
    return names


def _refuse_other_embeddings(cfg, made: dict[str, Any]) -> None:
    """A named set reuses the embeddings: a --model, --text or --embeddings-from other than theirs needs new ones.

    A flag left at its default means "the embeddings' own" (the embeddings may have been made with another)."""
    from katcli.pipeline.embed import EmbedConfig, model_words

    model, default = made.get("model", {}), EmbedConfig()
    asked = []
    if cfg.embeddings_from is not None:
        asked.append(f"--embeddings-from {cfg.embeddings_from}")
    if cfg.model not in (default.model, model.get("name")):
        asked.append(f"--model {cfg.model}")
    if cfg.text not in (default.text, made.get("text")):
        asked.append(f"--text {cfg.text}")
    if asked:
        raise ConfigError(
            f"{', '.join(asked)}: a named weight set reuses the embeddings there "
            f"({model_words(made)}, --text {made.get('text')})",
            hint="drop the flag to weight the same embeddings differently, or re-encode with `kat embed` (no --name)",
        )


def run_weight_set(ws: Workspace, cfg, *, progress: ProgressFn = no_progress):
    """`kat embed --name NAME`: a weight set from the current embeddings; returns the stage's `EmbedResult`."""
    from katcli.density.estimate import estimate_density
    from katcli.density.artifacts import read_ids
    from katcli.pipeline import embed as E

    started = time.perf_counter()
    name = check_set_name(cfg.name, "--name")
    if name == P.DEFAULT_WEIGHT_SET:
        raise ConfigError("--name default is the set `kat embed` writes without --name", hint="drop --name")
    weights_rel, meta_rel = P.weight_set_weights(name), P.weight_set_metadata(name)
    with StageRun(ws, STAGE, name=name, params=cfg.params(), force=cfg.force) as run:
        made = json.loads(run.input(P.EMBED_METADATA).read_text(encoding="utf-8"))
        _refuse_other_embeddings(cfg, made)
        run.params.update({"model": made["model"].get("name"), "text": made["text"]})  # what the set was made from
        E.check_embeddings_current(ws)
        emb = np.load(run.input(P.EMBEDDINGS), allow_pickle=False)
        ids = read_ids(run.input(P.EMBED_IDS))
        res = estimate_density(emb, cfg.knn_params(), cfg.weight_params(), progress=progress)
        n, dim = emb.shape
        base = E.build_metadata(cfg, n, dim, made["model"], res)
        metadata = {"format": METADATA_FORMAT, "name": name, "embeddings": P.EMBEDDINGS,
                    **{k: v for k, v in base.items() if k != "format"}, "text": made["text"]}
        E.save_npy(run.output(weights_rel), res.weights_f32)
        run.output(meta_rel).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        run.describe(weights_rel, shape=[n])
        timings = {**res.timings, "total_s": time.perf_counter() - started}
        run.stats.update({"n": n, "index": res.knn.index, "recall": metadata["recall"],
                          "max_min_ratio": res.stats["max_min_ratio"], "ess": res.stats["ess"],
                          "timings": {k: round(v, 3) for k, v in sorted(timings.items())}})
        forced_over = list(run.forced_over)
    texts = _texts_of(ws, ids, made["text"])
    return E.result_of(res, n=n, dim=dim, ids=ids, texts=texts, model=f"{E.model_words(made)} (the embeddings there, reused)",
                       text=made["text"], timings=timings, out_dir=ws.abs(weights_rel).parent, metadata=metadata,
                       forced_over=forced_over)


def _texts_of(ws: Workspace, ids: list[str], mode: str) -> list[str]:
    """Each prefix's embedded text, in row order (for the rarest/densest tables)."""
    from katcli.density.text import read_prefix_texts

    texts = read_prefix_texts(ws.abs(P.PREFIXES), mode).texts
    return texts if len(texts) == len(ids) else [""] * len(ids)
