"""CI runs the browser tests: .ci/run installs Chromium when absent, and under CI=true a missing one fails."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from vizkit import CHROMIUM, require_chromium

REPO = Path(__file__).resolve().parents[1]


def test_ci_installs_chromium_before_the_test_command_and_sets_ci():
    lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    install = next(i for i, ln in enumerate(lines) if re.search(r"apt-get install -y -qq chromium\b", ln))
    guard = next(i for i, ln in enumerate(lines) if f"[ ! -x {CHROMIUM} ]" in ln)
    export = lines.index("export CI=true")
    assert export < guard < install < len(lines) - 1  # the README's test command stays the last line


def test_a_missing_chromium_skips_locally_but_fails_in_ci(tmp_path):
    missing = tmp_path / "no-chromium"
    with pytest.raises(pytest.skip.Exception):
        require_chromium(missing, {})
    with pytest.raises(pytest.skip.Exception):
        require_chromium(missing, {"CI": "false"})
    with pytest.raises(pytest.fail.Exception, match="CI must run it"):
        require_chromium(missing, {"CI": "true"})
    present = tmp_path / "chromium"
    present.write_text("")
    assert require_chromium(present, {"CI": "true"}) is None
