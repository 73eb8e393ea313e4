"""From the embed stage's files to the viz document and page, in memory.

Order of work: load and cross-check the embeddings, weights, ids and metadata; choose the shown rows
(`sampling`); read their prompt text while verifying the prefixes file's id order (`inputs`); project
(`projection`); assemble the document (`points`) and the page (`page`). Nothing is written here — the
pipeline stage owns temp files, atomic replacement and the manifest — and nothing here knows about the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from katcli.errors import ConfigError, KatError
from katcli.progress import ProgressFn, no_progress
from katcli.viz.inputs import load_embedding_inputs, read_prompts
from katcli.viz.page import COLOR_MODES, render_page
from katcli.viz.points import build_document, density_from_weights, dumps_document
from katcli.viz.projection import METHODS, project, require_umap
from katcli.viz.sampling import select_points

DEFAULT_MAX_POINTS = 5000


@dataclass(frozen=True)
class VizOptions:
    method: str = "pca"
    max_points: int = DEFAULT_MAX_POINTS
    color: str = "weight"
    seed: int = 0

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.max_points < 1:
            raise ConfigError("--max-points must be at least 1")
        if self.color not in COLOR_MODES:
            raise ConfigError(f"--color must be one of {', '.join(COLOR_MODES)}, got {self.color!r}")
        if self.seed < 0:
            raise ConfigError("--seed must be zero or positive")


@dataclass(frozen=True)
class VizInputPaths:
    embeddings: Path
    weights: Path
    ids: Path
    metadata: Path
    prefixes: Path


@dataclass(frozen=True)
class VizBuild:
    document: dict[str, Any]
    json_text: str
    html_text: str
    warnings: list[str] = field(default_factory=list)

    @property
    def n_total(self) -> int:
        return int(self.document["n_total"])

    @property
    def n_shown(self) -> int:
        return int(self.document["n_shown"])


def build_viz(paths: VizInputPaths, options: VizOptions, *, progress: ProgressFn = no_progress) -> VizBuild:
    """The viz JSON text and HTML page for the given inputs and options."""
    options.validate()
    if options.method == "umap":
        require_umap()  # fail before any heavy work
    inputs = load_embedding_inputs(paths.embeddings, paths.weights, paths.ids, paths.metadata)
    density = density_from_weights(inputs.weights, inputs.metadata)
    if options.color == "density" and density.values is None:
        raise KatError(
            "--color density needs the density parameters (eps, power > 0) in the embeddings metadata",
            file=str(paths.metadata),
            hint="use `--color weight` or `--color source`, or re-run `kat embed`",
        )
    selection = select_points(inputs.weights, options.max_points, options.seed)
    prompts = read_prompts(paths.prefixes, inputs.ids, selection.indices, progress=progress)
    projection = project(
        inputs.embeddings, selection.indices, method=options.method, seed=options.seed, progress=progress
    )
    document = build_document(
        ids=inputs.ids,
        weights=inputs.weights,
        density=density,
        selection=selection,
        projection=projection,
        prompts=prompts,
        seed=options.seed,
        max_points=options.max_points,
    )
    warnings = []
    if density.values is None:
        warnings.append(density.note)
    return VizBuild(
        document=document,
        json_text=dumps_document(document),
        html_text=render_page(document, color=options.color),
        warnings=warnings,
    )
