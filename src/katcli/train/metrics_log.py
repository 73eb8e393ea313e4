"""`metrics.jsonl`: one JSON line per training step (and per evaluation), appended as training goes.

Lines hold no wall-clock values, so identical runs write identical files. On `--resume` from step `s` the lines
after `s` — written by the interrupted run after its last checkpoint, possibly torn — are dropped, so the resumed
file is byte-identical to an uninterrupted run's. Numbers are rounded to 6 significant digits; non-finite values are
written as null. This module knows the file format only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def rounded(x: float) -> float | None:
    """6 significant digits; None for NaN or ±inf (JSON has no such numbers)."""
    return None if not math.isfinite(x) else float(f"{x:.6g}")


class MetricsLog:
    """`metrics.jsonl`, appended line by line; on resume, lines after the checkpoint's step are dropped."""

    def __init__(self, path: Path | None, *, resume_step: int | None) -> None:
        self.path = path
        self._fh = None
        if path is None:
            return
        kept: list[str] = []
        if resume_step is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    if int(json.loads(line)["step"]) <= resume_step:
                        kept.append(line)
                except (ValueError, KeyError, TypeError):
                    break  # a torn last line from a killed run
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "w", encoding="utf-8", newline="\n")
        for line in kept:
            self._fh.write(line + "\n")
        self._fh.flush()

    def write(self, record: Mapping[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
