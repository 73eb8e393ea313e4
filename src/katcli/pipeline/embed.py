"""The `embed` stage: prompt embeddings and k-NN density weights, recorded in the manifest.

Input (checked against the manifest): `data/prefixes_all.jsonl`, and with `--embeddings-from` the user's
`.npy` (recorded as an external input). Outputs in `data/embeddings_offline/`, written through `StageRun`
(temp files moved into place together, then the manifest):
- `embeddings.npy` [N, D] float32, L2-normalised rows, row i ↔ line i of the prefixes file;
- `density_weights.npy` [N] float32, summing to 1 (rare prompts weigh more);
- `ids.json`, the prefix ids in row order (one per line);
- `embeddings_metadata.json`: model and which copy, dims, text mode, k, eps, power, max-ratio, index and
  recall, weight and density statistics. Wall-clock timings go to the manifest's run stats instead, so
  identical runs write identical bytes.
Encoding resumes from `.kat/partial/embed/` after an interruption; the scratch chunks are removed once the
stage has committed. `check_embeddings_current` is the check later stages call on these files.

The work is in `katcli.density`; this module wires files, parameters and the manifest, and knows nothing
about Typer or Rich.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from katcli import __version__
from katcli.density.chunked import clear_chunks, encode_resumable
from katcli.density.embeddings import load_embeddings
from katcli.density.encoder import DEFAULT_MODEL, default_chunk_size, encode_fn, resolve_and_load, texts_digest
from katcli.density.estimate import DensityResult, estimate_density
from katcli.devices import check_device, resolve_device
from katcli.density.hnsw import HnswParams
from katcli.density.ids import check_embedding_rows, check_ids_match
from katcli.density.knn import KnnParams
from katcli.density.text import FIRST_USER, check_text_mode, read_prefix_texts
from katcli.density.weights import WeightParams
from katcli.errors import ConfigError
from katcli.pipeline.stage import StageRun
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P

STAGE = "embed"
OUTPUTS = (P.EMBEDDINGS, P.DENSITY_WEIGHTS, P.EMBED_IDS, P.EMBED_METADATA)
METADATA_FORMAT = "kat-embeddings/1"
SHOWN_PROMPTS = 5
_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_set_name(name: str, flag: str) -> str:
    """A weight set's name (`kat embed --name`, `--weights`): it becomes a directory under weights/."""
    if not _SET_NAME.match(name):
        raise ConfigError(f"{flag} must be letters, digits, '.', '_' or '-' (no slashes), starting alphanumeric")
    return name


@dataclass(frozen=True)
class EmbedConfig:
    model: str = DEFAULT_MODEL
    text: str = FIRST_USER
    k: int = 20
    eps: float = 1e-3
    power: float = 1.0
    max_ratio: float | None = None
    index: str = "auto"
    batch_size: int = 64
    device: str = "auto"
    embeddings_from: Path | None = None
    seed: int = 0
    build_threads: int = 1
    target_recall: float = 0.95
    force: bool = False
    name: str | None = None  # a named weight set from the embeddings there (`pipeline.weight_sets`)

    def validate(self) -> None:
        """Every flag, before any lock is taken, file read or model loaded."""
        if self.name is not None:
            check_set_name(self.name, "--name")
        self.knn_params()
        self.weight_params()
        check_text_mode(self.text)
        check_device(self.device)
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1 (got {self.batch_size})")
        if self.seed < 0:
            raise ConfigError(f"--seed must be ≥ 0 (got {self.seed})")

    def knn_params(self) -> KnnParams:
        return KnnParams(
            k=self.k,
            index=self.index,
            seed=self.seed,
            target_recall=self.target_recall,
            hnsw=HnswParams(build_threads=self.build_threads),
        )

    def weight_params(self) -> WeightParams:
        return WeightParams(eps=self.eps, power=self.power, max_ratio=self.max_ratio)

    def params(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "force" and (k != "name" or v is not None)}
        out["embeddings_from"] = str(self.embeddings_from) if self.embeddings_from else None
        return out


@dataclass(frozen=True)
class ShownPrompt:
    id: str
    text: str
    density: float
    weight: float


@dataclass(frozen=True)
class EmbedResult:
    n: int
    dim: int
    model: str  # what encoded the prompts, in words
    text: str
    k: int
    index: str
    recall: float | None
    ef_search: int | None
    cells: int | None
    nprobe: int | None
    weight_stats: dict[str, Any]
    n_clipped: int
    rarest: list[ShownPrompt]
    densest: list[ShownPrompt]
    timings: dict[str, float]
    resumed_rows: int
    out_dir: Path
    metadata: dict[str, Any]
    forced_over: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _resume_key(source_identity: str, device: str, batch_size: int, chunk_size: int, text: str, digest: str) -> str:
    import sentence_transformers
    import torch

    parts = {
        "model": source_identity,
        "device": device,
        "batch_size": batch_size,
        "chunk_size": chunk_size,
        "text": text,
        "texts_sha256": digest,
        "normalize": True,
        "torch": torch.__version__,
        "sentence_transformers": sentence_transformers.__version__,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _round(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else float(f"{x:.{digits}g}")


def build_metadata(
    cfg: EmbedConfig, n: int, dim: int, model: dict[str, Any], res: DensityResult
) -> dict[str, Any]:
    """The JSON document that says how the weights were made: deterministic, so no wall-clock timings."""
    knn = res.knn
    hnsw = None
    if knn.index == "hnsw":
        hp = cfg.knn_params().hnsw
        hnsw = {
            "m": hp.m,
            "ef_construction": hp.ef_construction,
            "shards": hp.shards,
            "insertion_order": "k-means cells",
            "ef_search": knn.ef_search,
            "target_recall": cfg.target_recall,
            "recall_queries": knn.recall_queries,
            "recall_by_ef": {str(ef): _round(r) for ef, r in knn.recall_by_ef.items()},
            "build_threads": hp.build_threads,
            "deterministic": hp.build_threads == 1,
        }
    ivf = None
    if knn.index == "ivf":
        ip = cfg.knn_params().ivf
        ivf = {
            "cells": knn.cells,
            "nprobe": knn.nprobe,
            "target_recall": cfg.target_recall,
            "recall_queries": knn.recall_queries,
            "recall_by_nprobe": {str(p): _round(r) for p, r in knn.recall_by_nprobe.items()},
            "train_per_cell": ip.train_per_cell,
            "kmeans_iterations": ip.iterations,
            "exact_fallback": knn.exact_fallback,
            "deterministic": True,
        }
    return {
        "format": METADATA_FORMAT,
        "kat_version": __version__,
        "n": n,
        "dims": dim,
        "model": model,
        "text": cfg.text,
        "k": knn.k,
        "k_requested": cfg.k,
        "eps": cfg.eps,
        "power": cfg.power,
        "max_ratio": cfg.max_ratio,
        "index": knn.index,
        "index_requested": cfg.index,
        "seed": cfg.seed,
        "recall": _round(knn.recall),
        "hnsw": hnsw,
        "ivf": ivf,
        "density_max": res.density_stats["max"],
        "density": res.density_stats,
        "weights": {**res.stats, "n_clipped": res.n_clipped},
        "timings": "wall-clock timings are in manifest.json (runs.embed.stats.timings)",
    }


def _shown(rows: list[int], ids: list[str], texts: list[str], res: DensityResult) -> list[ShownPrompt]:
    return [ShownPrompt(ids[i], texts[i], float(res.density[i]), float(res.weights[i])) for i in rows]


def save_npy(path: Path, arr: np.ndarray) -> None:
    with path.open("wb") as fh:  # np.save(path) would append ".npy" to the temporary name
        np.save(fh, arr, allow_pickle=False)


def run_embed(ws: Workspace, cfg: EmbedConfig, *, progress: ProgressFn = no_progress) -> EmbedResult:
    """Embed every prefix (or take `--embeddings-from`), compute density weights, record the stage."""
    cfg.validate()
    if cfg.name is not None:
        raise ValueError("a named weight set is made by katcli.pipeline.weight_sets.run_weight_set")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    scratch: Path | None = None
    resumed = 0
    with StageRun(ws, STAGE, params=cfg.params(), force=cfg.force) as run:
        prefixes = read_prefix_texts(run.input(P.PREFIXES), cfg.text, progress=progress)
        timings["read_s"] = time.perf_counter() - started
        t0 = time.perf_counter()
        if cfg.embeddings_from is not None:
            src = run.external_input(cfg.embeddings_from)
            emb = load_embeddings(src, len(prefixes))
            model: dict[str, Any] = {"source": "file", "path": str(src), "normalized": True}
            model_words = f"embeddings from {src}"
            timings["load_embeddings_s"] = time.perf_counter() - t0
        else:
            device = resolve_device(cfg.device).type
            loaded = resolve_and_load(cfg.model, device)
            timings["load_model_s"] = time.perf_counter() - t0
            chunk_size = default_chunk_size(device, cfg.batch_size)
            key = _resume_key(
                loaded.source.identity(), device, cfg.batch_size, chunk_size, cfg.text, texts_digest(prefixes.texts)
            )
            scratch = ws.partial_dir(STAGE)
            t1 = time.perf_counter()
            emb, resumed = encode_resumable(
                encode_fn(loaded, cfg.batch_size),
                prefixes.texts,
                key=key,
                scratch=scratch,
                chunk_size=chunk_size,
                progress=progress,
            )
            timings["encode_s"] = time.perf_counter() - t1
            model = {
                "name": cfg.model,
                **{k: v for k, v in loaded.source.to_json().items() if k != "requested"},
                "copy": loaded.source.describe(),
                "device": device,
                "batch_size": cfg.batch_size,
                "max_seq_length": loaded.max_seq_length,
                "normalized": True,
            }
            model_words = f"{cfg.model} — {loaded.source.describe()}"
        n, dim = emb.shape
        res = estimate_density(emb, cfg.knn_params(), cfg.weight_params(), progress=progress)
        timings.update(res.timings)
        timings["total_s"] = time.perf_counter() - started
        metadata = build_metadata(cfg, n, dim, model, res)

        save_npy(run.output(P.EMBEDDINGS), emb)
        save_npy(run.output(P.DENSITY_WEIGHTS), res.weights_f32)
        ids_text = "[\n" + ",\n".join(json.dumps(i) for i in prefixes.ids) + "\n]\n"
        run.output(P.EMBED_IDS).write_text(ids_text, encoding="utf-8")
        run.output(P.EMBED_METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        run.describe(P.EMBEDDINGS, shape=[n, dim])
        run.describe(P.DENSITY_WEIGHTS, shape=[n])
        run.describe(P.EMBED_IDS, rows=n)
        run.stats.update(
            {
                "n": n,
                "dims": dim,
                "model_source": model.get("source"),
                "index": res.knn.index,
                "recall": metadata["recall"],
                "max_min_ratio": res.stats["max_min_ratio"],
                "ess": res.stats["ess"],
                "resumed_rows": resumed,
                "timings": {k: round(v, 3) for k, v in sorted(timings.items())},
            }
        )
        forced_over = list(run.forced_over)
    if scratch is not None:
        clear_chunks(scratch)  # only now: a failure before the commit keeps the chunks for the re-run
    return result_of(res, n=n, dim=dim, ids=prefixes.ids, texts=prefixes.texts, model=model_words, text=cfg.text,
                     timings=timings, out_dir=ws.abs(P.EMBED_DIR), metadata=metadata, forced_over=forced_over,
                     resumed=resumed)


def result_of(res: DensityResult, *, n: int, dim: int, ids: list[str], texts: list[str], model: str, text: str,
              timings: dict[str, float], out_dir: Path, metadata: dict[str, Any], forced_over: list[str],
              resumed: int = 0) -> EmbedResult:
    """What the summary shows of a weighting (the default set's or a named one's)."""
    return EmbedResult(
        n=n,
        dim=dim,
        model=model,
        text=text,
        k=res.knn.k,
        index=res.knn.index,
        recall=res.knn.recall,
        ef_search=res.knn.ef_search,
        cells=res.knn.cells,
        nprobe=res.knn.nprobe,
        weight_stats=res.stats,
        n_clipped=res.n_clipped,
        rarest=_shown(res.rarest(SHOWN_PROMPTS), ids, texts, res),
        densest=_shown(res.densest(SHOWN_PROMPTS), ids, texts, res),
        timings=timings,
        resumed_rows=resumed,
        out_dir=out_dir,
        metadata=metadata,
        forced_over=forced_over,
    )


def model_words(metadata: dict[str, Any]) -> str:
    """What encoded the prompts, in words, from the embeddings' metadata."""
    model = metadata.get("model", {})
    if model.get("source") == "file":
        return f"embeddings from {model.get('path')}"
    return f"{model.get('name')} — {model.get('copy')}"


def check_embeddings_current(ws: Workspace) -> tuple[int, int]:
    """For later stages: ids.json matches prefixes_all.jsonl row for row and the arrays have N rows.

    Raises a KatError naming the first differing row (or the differing counts); returns (N, D).
    """
    check_ids_match(ws.abs(P.EMBED_IDS), ws.abs(P.PREFIXES))
    return check_embedding_rows(ws.abs(P.EMBED_IDS), ws.abs(P.EMBEDDINGS), ws.abs(P.DENSITY_WEIGHTS))
