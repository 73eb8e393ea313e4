"""Shared fixtures: an isolated workspace, a CliRunner wrapper, and the real-data location."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

# A test run started as a background job of a script (`pytest &`) inherits SIGINT ignored, and so would every kat
# process the interrupt tests start (an ignored signal stays ignored across exec): restore Python's own handler, so
# children start with the default action and a Ctrl-C test tests kat, not how pytest was launched.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
HH_REAL = SHARED / "data" / "hh-rlhf" / "harmless-base-test-first1000.jsonl.gz"


@pytest.fixture(autouse=True)
def _offline_and_isolated(monkeypatch, tmp_path):
    # Tests never touch the network or the user's real workspace / HF cache.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("KAT_WORKSPACE", raising=False)
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def ws_dir(tmp_path) -> Path:
    return tmp_path / "ws"


@pytest.fixture
def kat(ws_dir):
    """`kat(*args)` runs the CLI in-process against the test workspace; returns the Click result."""
    from katcli.cli.app import app

    runner = CliRunner()

    def run(*args: str, input: str | None = None, workspace: Path | None = ws_dir):
        argv = (["-w", str(workspace)] if workspace is not None else []) + [str(a) for a in args]
        return runner.invoke(app, argv, input=input, catch_exceptions=False)

    return run


@pytest.fixture
def hh_real() -> Path:
    if not HH_REAL.is_file():
        pytest.skip(f"real HH-RLHF rows not available ({HH_REAL}); ../shared is absent")
    return HH_REAL


def pytest_report_header(config):
    return f"kat tests; shared data: {'present' if HH_REAL.is_file() else 'absent'}; cpus={os.cpu_count()}"



@pytest.fixture
def populated(ws_dir):
    """pairs → prefixes → embed recorded in order, each reading the previous stage's outputs."""
    from katcli.workspace import paths as P
    from katfixtures import record_stage

    record_stage(ws_dir, "pairs", {P.PAIRS: '{"a": 1}\n{"a": 2}\n'})
    record_stage(ws_dir, "prefixes", {P.PREFIXES: "p1\n", P.PREFIX_ID_MAP: "a\tp1\n"}, inputs=(P.PAIRS,))
    record_stage(
        ws_dir, "embed",
        {P.EMBEDDINGS: "e", P.DENSITY_WEIGHTS: "w", P.EMBED_IDS: "[]", P.EMBED_METADATA: "{}"},
        inputs=(P.PREFIXES,),
    )
    return ws_dir


@pytest.fixture(scope="session")
def report_density_ws(tmp_path_factory) -> Path:
    """A workspace with only pairs (the built-in sample), prefixes and embeddings; shared by the report tests."""
    from reportkit import build_density_workspace

    return build_density_workspace(tmp_path_factory.mktemp("report") / "density")


@pytest.fixture(scope="session")
def report_rm_ws(tmp_path_factory, report_density_ws) -> Path:
    """`report_density_ws` plus a tokenizer and two tiny reward models (uniform, density-aware)."""
    from reportkit import build_rm_workspace

    return build_rm_workspace(tmp_path_factory.mktemp("report") / "rm", report_density_ws)
