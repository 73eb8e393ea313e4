"""The README's set-up commands are what CI runs; the documented commands exist."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _block_after(marker: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(rf"<!-- {marker} -->\s*```bash\n(.+?)\n```", text, re.S)
    assert m, f"README has no ```bash block after <!-- {marker} -->"
    return m.group(1).strip()


def test_ci_runs_exactly_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == _block_after("test-command")


def test_readme_setup_commands_pin_torch_through_constraints():
    constraints = (REPO / "constraints.txt").read_text(encoding="utf-8")
    assert re.search(r"^torch==2\.13\.0$", constraints, re.M)
    for marker in ("main-command", "test-command"):
        assert "-c constraints.txt" in _block_after(marker)
