"""What a report is made of: sections holding paragraphs, tables and figures, each figure with its table.

Sections build these plain objects; `katcli.report.render` turns them into HTML and Markdown and
`katcli.report.plotting` draws the figures. Cells are already formatted strings, so the HTML page and the
Markdown file show exactly the same numbers. This module draws nothing and reads no files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Below this many pairs (or prompts) in a group, a figure's caption says its intervals are wide.
SMALL_SAMPLE = 50


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()  # right-aligned columns; default: every column but the first

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"table row {row!r} has {len(row)} cells for {len(self.columns)} columns")

    def is_numeric(self, k: int) -> bool:
        return self.numeric[k] if self.numeric else k > 0


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[bool] = ()) -> Table:
    return Table(tuple(columns), tuple(tuple(str(c) for c in r) for r in rows), tuple(numeric))


@dataclass(frozen=True)
class Figure:
    """One figure: `draw(fig)` paints a matplotlib Figure; `table` holds the numbers it shows."""

    name: str  # file stem: <name>.png and <name>.pdf beside the report
    title: str
    caption: str  # one line: what it shows and how many pairs/prompts it rests on
    draw: Callable[[Any], None]
    table: Table
    size: tuple[float, float] = (7.0, 3.6)  # inches


@dataclass(frozen=True)
class Paragraph:
    text: str


Block = Paragraph | Table | Figure


@dataclass
class Section:
    key: str
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> Section:
        self.blocks.extend(blocks)
        return self

    @property
    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]


@dataclass
class Report:
    title: str
    subtitle: str
    sections: list[Section]

    @property
    def figures(self) -> list[Figure]:
        return [f for s in self.sections for f in s.figures]


def small_sample_note(n: int, what: str = "intervals are wide") -> str:
    """`" n = 15: intervals are wide."` when `n` is small, else `""` (appended to captions)."""
    return f" n = {n:,}: {what}." if n < SMALL_SAMPLE else ""


def fmt(x: float | None, digits: int = 3) -> str:
    """A number for a table cell; `–` for missing values."""
    if x is None or x != x:
        return "–"
    return f"{x:.{digits}f}"


def fmt_sig(x: float | None, digits: int = 4, *, signed: bool = False) -> str:
    """A number with `digits` significant figures (losses, weights), `–` when missing; `signed`: always a sign."""
    if x is None or x != x:
        return "–"
    return f"{x:+.{digits}g}" if signed else f"{x:.{digits}g}"
