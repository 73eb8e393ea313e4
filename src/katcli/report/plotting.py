"""Figures as PNG and PDF bytes with matplotlib, byte-reproducibly; imported only when a report is drawn.

Figures are plain `matplotlib.figure.Figure` objects, never pyplot: no global state, no GUI backend, and saving a
PNG uses the Agg renderer whatever backend the user has chosen.

matplotlib writes its version and the time into files by default (PNG `Software`, PDF `Creator`, `Producer`,
`CreationDate`), and honours `SOURCE_DATE_EPOCH` only for the date. Every one of those entries is removed here,
figures are drawn under matplotlib's default style (so a user's matplotlibrc cannot change the bytes) with a fixed
size and resolution, and no SVG is written (its ids would need `svg.hashsalt`). This module knows how to paint
and save a `katcli.report.document.Figure`; not what any figure shows.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from katcli.report.document import Figure

DPI = 120
#: Metadata entries matplotlib would fill with its version or the time; None removes them.
PNG_METADATA = {"Software": None}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}
#: Series colours, colour-blind safe (Okabe–Ito), in the order runs are listed.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


@dataclass(frozen=True)
class Rendered:
    png: bytes
    pdf: bytes
    width: int  # PNG pixels
    height: int


def colour(k: int) -> str:
    return PALETTE[k % len(PALETTE)]


def render(figure: Figure) -> Rendered:
    """Draw `figure` once and save it as PNG and PDF."""
    import matplotlib.style
    from matplotlib.figure import Figure as MplFigure

    with matplotlib.style.context("default"), matplotlib.rc_context(
        {"font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
         "axes.spines.right": False, "legend.frameon": False,
         "pdf.fonttype": 42}  # TrueType in PDFs: many venues reject matplotlib's default Type 3 fonts
    ):
        fig = MplFigure(figsize=figure.size, dpi=DPI, layout="constrained")
        figure.draw(fig)
        png, pdf = io.BytesIO(), io.BytesIO()
        fig.savefig(png, format="png", dpi=DPI, metadata=PNG_METADATA)
        fig.savefig(pdf, format="pdf", metadata=PDF_METADATA)
    width, height = (int(round(v * DPI)) for v in figure.size)
    return Rendered(png.getvalue(), pdf.getvalue(), width, height)


def plain_log_ticks(axis, span: float) -> None:
    """Tick labels on a log axis as plain numbers (0.9, 1, 2), not 9×10⁻¹; minor ticks labelled below a decade."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda x, _: f"{x:g}")
    axis.set_major_formatter(plain)
    axis.set_minor_formatter(plain if span < 10 else NullFormatter())
