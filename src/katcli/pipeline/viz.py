"""The `viz` stage: the prompt space in 3-D, as `viz/embeddings_3d.json` and a self-contained HTML page.

Inputs (checked against the manifest): the embed stage's embeddings, density weights, ids and metadata, and
the prefixes (for prompt text and sources). Outputs: the data document and the page, written through
`StageRun` (temp files, moved into place together, then the manifest). The work itself is
`katcli.viz.build`; this module only wires files, parameters and the manifest. It knows nothing about
Typer, Rich or opening a browser.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from katcli.pipeline.stage import StageRun
from katcli.progress import ProgressFn, no_progress
from katcli.viz.build import DEFAULT_MAX_POINTS, VizInputPaths, VizOptions, build_viz
from katcli.viz.projection import require_umap
from katcli.workspace import Workspace
from katcli.workspace import paths as P

STAGE = "viz"
OUTPUT_JSON = f"{P.VIZ_DIR}/embeddings_3d.json"
OUTPUT_HTML = f"{P.VIZ_DIR}/embeddings_3d.html"
INPUTS = (P.EMBEDDINGS, P.DENSITY_WEIGHTS, P.EMBED_IDS, P.EMBED_METADATA, P.PREFIXES)


@dataclass(frozen=True)
class VizConfig:
    method: str = "pca"
    max_points: int = DEFAULT_MAX_POINTS
    color: str = "weight"
    seed: int = 0
    force: bool = False

    def options(self) -> VizOptions:
        return VizOptions(method=self.method, max_points=self.max_points, color=self.color, seed=self.seed)

    def validate(self) -> None:
        """Flag values, and that `--method umap` can run here (before any lock is taken or file hashed)."""
        self.options().validate()
        if self.method == "umap":
            require_umap()

    def params(self) -> dict[str, object]:
        return asdict(self.options())


@dataclass(frozen=True)
class VizResult:
    json_path: Path
    html_path: Path
    html_bytes: int
    n_total: int
    n_shown: int
    n_rare_kept: int
    method: str
    explained_variance_ratio: list[float] | None
    density_kind: str
    sources: dict[str, int]
    forced_over: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def run_viz(ws: Workspace, cfg: VizConfig, *, progress: ProgressFn = no_progress) -> VizResult:
    """Build and record the viz page for the workspace's current embeddings."""
    cfg.validate()
    with StageRun(ws, STAGE, params=cfg.params(), force=cfg.force) as run:
        embeddings, weights, ids, metadata, prefixes = (run.input(rel) for rel in INPUTS)
        paths = VizInputPaths(
            embeddings=embeddings, weights=weights, ids=ids, metadata=metadata, prefixes=prefixes
        )
        built = build_viz(paths, cfg.options(), progress=progress)
        html_bytes = built.html_text.encode("utf-8")
        run.output(OUTPUT_JSON).write_text(built.json_text, encoding="utf-8")
        run.output(OUTPUT_HTML).write_bytes(html_bytes)
        run.describe(OUTPUT_JSON, rows=built.n_shown)
        run.describe(OUTPUT_HTML, rows=built.n_shown)
        doc = built.document
        run.stats.update(
            {
                "n_total": built.n_total,
                "n_shown": built.n_shown,
                "n_rare_kept": doc["n_rare_kept"],
                "method": doc["projection"]["method"],
                "explained_variance_ratio": doc["projection"]["explained_variance_ratio"],
                "density_kind": doc["density"]["kind"],
            }
        )
        forced_over = list(run.forced_over)
    return VizResult(
        json_path=ws.abs(OUTPUT_JSON),
        html_path=ws.abs(OUTPUT_HTML),
        html_bytes=len(html_bytes),
        n_total=built.n_total,
        n_shown=built.n_shown,
        n_rare_kept=int(doc["n_rare_kept"]),
        method=doc["projection"]["method"],
        explained_variance_ratio=doc["projection"]["explained_variance_ratio"],
        density_kind=doc["density"]["kind"],
        sources=dict(doc["sources"]),
        forced_over=forced_over,
        warnings=list(built.warnings),
    )
