"""Test kit for the report: workspaces built through the real CLI from the built-in sample, and page parsing.

Deliberately not a conftest.py (see tests/viz/vizkit.py). The session-scoped fixtures that share these
workspaces live in tests/conftest.py: `report_density_ws` (pairs, prefixes and embeddings only) and
`report_rm_ws` (the same plus a tokenizer and two tiny reward models, uniform and density-aware).

Embeddings come from `kat embed --embeddings-from` with a seeded, clustered array, so no MiniLM run is needed and
the weights spread over a real range; everything else is exactly what a user's commands write.
"""

from __future__ import annotations

import base64
import html
import re
import shutil
from pathlib import Path

import numpy as np
from typer.testing import CliRunner
from vizkit import dom_attribute

TINY_RM = (
    "--depth", "1", "--max-steps", "6", "--batch-size", "8", "--max-len", "96", "--lr", "3e-3",
    "--val-ratio", "0.2", "--eval-every", "3", "--save-every", "0", "--device", "cpu", "--threads", "1",
)


def kat(root: Path, *args: str):
    """Run `kat -w root ARGS` in-process; fails loudly when the command does."""
    from katcli.cli.app import app

    result = CliRunner().invoke(app, ["-q", "-w", str(root), *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, f"kat {' '.join(args)} exited {result.exit_code}: {result.output}"
    return result


def clustered_embeddings(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    """Unit rows in clusters of very different spread, so density weights range over more than 10x."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, d))
    spread = np.array([0.05, 0.1, 0.2, 0.4, 0.8, 2.0])
    cluster = rng.integers(0, len(centres), size=n)
    emb = centres[cluster] + spread[cluster, None] * rng.normal(size=(n, d))
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)


def build_density_workspace(root: Path) -> Path:
    """`kat pairs download --from sample`, `kat prefixes`, `kat embed --embeddings-from` (seeded array)."""
    kat(root, "pairs", "download", "--from", "sample", "--seed", "0")
    kat(root, "prefixes")
    n = sum(1 for line in (root / "data" / "prefixes_all.jsonl").open(encoding="utf-8") if line.strip())
    emb = root.parent / f"{root.name}-embeddings.npy"
    np.save(emb, clustered_embeddings(n))
    kat(root, "embed", "--embeddings-from", str(emb))
    return root


def build_rm_workspace(root: Path, density_ws: Path) -> Path:
    """A copy of the density workspace plus `kat train tokenizer` and two tiny reward models."""
    shutil.copytree(density_ws, root)
    kat(root, "train", "tokenizer", "--vocab-size", "320")
    kat(root, "train", "rm", "--name", "uniform", *TINY_RM)
    kat(root, "train", "rm", "--name", "density", "--density-aware", *TINY_RM)
    return root


def report_files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def html_tables(page: str) -> list[list[list[str]]]:
    """Every <table> of a page as rows of unescaped cell texts (header row first)."""
    tables = []
    for body in re.findall(r"<table>(.*?)</table>", page, flags=re.S):
        rows = []
        for row in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S):
            rows.append([html.unescape(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, flags=re.S)])
        tables.append(rows)
    return tables


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table as rows of cell texts (header first, the --- line dropped)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("| "):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not all(set(c) <= set("-: ") for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


# -- the report page in headless Chromium (with vizkit's `chromium` fixture) ---------------------------------

CONSOLE_PROBLEMS = re.compile(r"Uncaught|Refused|Content Security Policy|Error", re.I)
INSPECT = """
<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  let decoded = 0, nonblank = 0;
  for (const img of imgs) {
    if (!img.complete || img.naturalWidth === 0) continue;
    decoded++;
    const c = document.createElement("canvas");
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0);
    const px = g.getImageData(0, 0, c.width, c.height).data;
    let ink = 0;
    for (let k = 0; k < px.length; k += 4) if (px[k] < 200 || px[k + 1] < 200 || px[k + 2] < 200) ink++;
    if (ink > 500) nonblank++;
  }
  document.body.dataset.images = String(imgs.length);
  document.body.dataset.decoded = String(decoded);
  document.body.dataset.nonblank = String(nonblank);
  document.body.dataset.figures = Array.from(document.querySelectorAll("figure")).map(f => f.id).join(",");
});
</script>
"""


def blank_png() -> str:
    """A white PNG of a figure that draws nothing, base64: the control for the blank check."""
    from katcli.report.document import Figure, table
    from katcli.report.plotting import render

    png = render(Figure("blank", "blank", "", lambda fig: None, table(["a"], []), size=(2, 1))).png
    return base64.b64encode(png).decode("ascii")


def inspect_page(chromium, page: str, path) -> dict[str, str | None]:
    """The page has no script: a copy gets `INSPECT` injected (its CSP, which rightly refuses scripts, removed),
    which counts images, decoded images and images with any non-white ink, and lists the figures' ids."""
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    path.write_text(page.replace("</body>", INSPECT + "</body>"), encoding="utf-8")
    run = chromium.run(path, "--dump-dom", "--virtual-time-budget=5000")
    return {k: dom_attribute(run.stdout, f"data-{k}") for k in ("images", "decoded", "nonblank", "figures")}
