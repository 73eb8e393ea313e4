"""Test kit for the viz tests: synthetic `kat embed` + `kat prefixes` output and a headless-Chromium harness.

Deliberately not a conftest.py: several conftest modules on sys.path collide under the name `conftest`
(a conftest here would shadow the root one). Test modules import what they need from here; the
fixtures `embed_files` and `chromium` are imported into the modules that use them.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from katcli.viz.build import VizInputPaths

SOURCES = ("hh-rlhf", "ultrafeedback-binarized", "stack-exchange-preferences")


@dataclass
class EmbedFiles:
    paths: VizInputPaths
    embeddings: np.ndarray
    weights: np.ndarray
    ids: list[str]
    texts: list[str]


def make_embed_files(
    root: Path,
    n: int = 120,
    d: int = 16,
    seed: int = 0,
    *,
    eps: float = 1e-3,
    power: float = 1.0,
    texts: list[str] | None = None,
    metadata: dict | None = None,
) -> EmbedFiles:
    """Clustered unit-norm embeddings, kNN-free but realistic weights, ids and matching prefixes.

    Density is taken as the cosine similarity to the row's cluster centre (clamped to [0, 1]) and the weights
    follow `kat embed`'s formula, `(density + eps) ** -power`, normalised to sum to 1.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, d))
    spread = np.array([0.15, 0.3, 0.6, 1.5])
    cluster = rng.integers(0, 4, size=n)
    emb = centres[cluster] + spread[cluster, None] * rng.normal(size=(n, d))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    unit_centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    density = np.clip((emb * unit_centres[cluster]).sum(axis=1), 0.0, 1.0)
    weights = (density + eps) ** -power
    weights = (weights / weights.sum()).astype(np.float32)
    ids = [f"p{i:06d}" for i in range(n)]
    if texts is None:
        texts = [f"Prompt number {i} about topic {cluster[i]}?" for i in range(n)]

    out = root / "data" / "embeddings_offline"
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "embeddings.npy", emb.astype(np.float32))
    np.save(out / "density_weights.npy", weights)
    (out / "ids.json").write_text(json.dumps(ids), encoding="utf-8")
    meta = {"model": "synthetic", "dims": d, "k": 20, "eps": eps, "power": power, "max_ratio": None}
    if metadata is not None:
        meta = metadata
    (out / "embeddings_metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    prefixes = root / "data" / "prefixes_all.jsonl"
    with prefixes.open("w", encoding="utf-8") as fh:
        for i in range(n):
            srcs = [SOURCES[int(cluster[i]) % 3]]
            if i % 17 == 0:
                srcs = [SOURCES[0], SOURCES[1]]
            messages = [{"role": "user", "content": texts[i]}, {"role": "assistant", "content": "Sure."}]
            row = {"id": ids[i], "prefix": {"messages": messages}, "n_pairs": 1 + i % 3, "srcs": srcs}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    paths = VizInputPaths(
        embeddings=out / "embeddings.npy",
        weights=out / "density_weights.npy",
        ids=out / "ids.json",
        metadata=out / "embeddings_metadata.json",
        prefixes=prefixes,
    )
    return EmbedFiles(paths=paths, embeddings=emb.astype(np.float32), weights=weights, ids=ids, texts=texts)


@pytest.fixture
def embed_files(tmp_path: Path) -> EmbedFiles:
    return make_embed_files(tmp_path)


def record_upstream(ws_root: Path, **kwargs) -> EmbedFiles:
    """Write synthetic embed + prefixes files into a workspace and record pairs → prefixes → embed runs.

    The runs go through the real `StageRun` protocol (adopting the files already in place), so `kat viz`
    sees a manifest exactly like the one real upstream commands leave.
    """
    from katcli.pipeline.stage import StageRun
    from katcli.workspace import Workspace
    from katcli.workspace import paths as P

    files = make_embed_files(ws_root, **kwargs)
    ws = Workspace(ws_root)
    with StageRun(ws, "pairs", params={"fake": True}, command="kat test-pairs") as run:
        run.output(P.PAIRS).write_text('{"fake": true}\n', encoding="utf-8")
    with StageRun(ws, "prefixes", params={"fake": True}, command="kat test-prefixes") as run:
        run.input(P.PAIRS)
        run.adopt(P.PREFIXES)
        run.output(P.PREFIX_ID_MAP).write_text("", encoding="utf-8")
        run.describe(P.PREFIXES, rows=len(files.ids))
    with StageRun(ws, "embed", params={"fake": True}, command="kat test-embed") as run:
        run.input(P.PREFIXES)
        for rel in (P.EMBEDDINGS, P.DENSITY_WEIGHTS, P.EMBED_IDS, P.EMBED_METADATA):
            run.adopt(rel)
        run.describe(P.EMBEDDINGS, shape=list(files.embeddings.shape))
    return files


# ----------------------------------------------------------------------------- headless Chromium harness

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
]


@dataclass
class BrowserRun:
    stdout: str
    stderr: str
    netlog: Path

    def console_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if ":CONSOLE" in line]


class Chromium:
    """Runs the Debian `chromium` headless: one fresh profile and one net-log per run."""

    def __init__(self, exe: Path, workdir: Path) -> None:
        self.exe = exe
        self.workdir = workdir
        self.runs = 0

    def run(self, page: Path, *extra: str, size: tuple[int, int] = (1000, 700)) -> BrowserRun:
        self.runs += 1
        profile = self.workdir / f"profile{self.runs}"
        netlog = self.workdir / f"netlog{self.runs}.json"
        cmd = [
            str(self.exe),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--log-net-log={netlog}",
            f"--window-size={size[0]},{size[1]}",
            *extra,
            page.resolve().as_uri(),
        ]
        env = dict(os.environ, HOME=str(self.workdir))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=self.workdir)
        assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}"
        return BrowserRun(stdout=proc.stdout, stderr=proc.stderr, netlog=netlog)

    def screenshot(self, page: Path, out: Path, size: tuple[int, int] = (1000, 700)) -> BrowserRun:
        return self.run(page, f"--screenshot={out}", size=size)

    def dump_dom(self, page: Path) -> BrowserRun:
        return self.run(page, "--dump-dom")


def require_chromium(exe: Path = CHROMIUM, environ: Mapping[str, str] = os.environ) -> None:
    """Skip without Chromium, except in CI (CI=true): there a skipped browser test would pass unseen, so it fails."""
    if exe.exists():
        return
    reason = f"headless browser test needs {exe} (Debian package `chromium`)"
    if environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason}; CI must run it (.ci/run installs it with apt-get)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def chromium(tmp_path: Path) -> Chromium:
    require_chromium()
    work = tmp_path / "chromium"
    work.mkdir()
    return Chromium(CHROMIUM, work)


def page_requests(netlog: Path) -> list[str]:
    """URLs of every network request a *page* started, from a Chromium net-log.

    Chromium itself (update checks, account probes) also makes requests even with background networking off;
    those carry the initiator "not an origin" and no file:// isolation key. Everything else — anything a
    document, script, stylesheet or image of the page started — is returned.
    """
    log = json.loads(netlog.read_text(encoding="utf-8"))
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls = []
    for event in log["events"]:
        if names.get(event["type"]) != "URL_REQUEST_START_JOB":
            continue
        params = event.get("params") or {}
        if "url" not in params:
            continue
        browser_internal = params.get("initiator") == "not an origin" and "file://" not in str(
            params.get("network_isolation_key", "")
        )
        if not browser_internal:
            urls.append(params["url"])
    return urls


def read_png(path: Path) -> np.ndarray:
    """Decode an 8-bit, non-interlaced RGB/RGBA PNG (what Chromium writes) to a uint8 [h, w, c] array."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    assert header is not None, "PNG without IHDR"
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, f"unsupported PNG format {header}"
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=y * (stride + 1) + 1).astype(np.int64)
        if kind == 0:
            cur = line
        elif kind == 1:  # Sub: a running sum per channel
            cur = line.reshape(width, bpp).cumsum(axis=0).reshape(-1) % 256
        elif kind == 2:  # Up
            cur = (line + prev) % 256
        elif kind in (3, 4):  # Average, Paeth: depend on the reconstructed left pixel, so go byte by byte
            cur_list = [0] * stride
            lv, pv = line.tolist(), prev.tolist()
            for i in range(stride):
                a = cur_list[i - bpp] if i >= bpp else 0
                b = pv[i]
                if kind == 3:
                    pred = (a + b) // 2
                else:
                    c = pv[i - bpp] if i >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur_list[i] = (lv[i] + pred) & 0xFF
            cur = np.array(cur_list, dtype=np.int64)
        else:
            raise AssertionError(f"bad PNG filter type {kind}")
        out[y] = cur
        prev = cur
    return out.reshape(height, width, bpp)


def coloured_pixels(image: np.ndarray, x_from: int = 0) -> int:
    """Pixels right of `x_from` with a clearly saturated colour (points; not the grey background, axes or text)."""
    rgb = image[:, x_from:, :3].astype(np.int64)
    saturation = rgb.max(axis=2) - rgb.min(axis=2)
    return int((saturation > 60).sum())


def dom_attribute(dom: str, name: str) -> str | None:
    match = re.search(r"<body[^>]*\s" + re.escape(name) + r'="([^"]*)"', dom)
    return None if match is None else match.group(1)
