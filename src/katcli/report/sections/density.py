"""Prompt density: how the density weights of `kat embed` are spread, and which prompts are rarest and densest.

Reads `data/embeddings_offline/` and `data/prefixes_all.jsonl` with the viz stage's checked loaders (shapes,
finiteness, id order against the prefixes file) and summarises the weights with `kat embed`'s own statistics
(max/min ratio, Kish's effective sample size). Weights are shown as multiples of the uniform weight 1/N. Rarest
and densest are ranked by weight (ties by row), as `kat viz` ranks them: the files keep weights, not densities.
Present when the embeddings, weights, ids and prefixes all exist.
"""

from __future__ import annotations

import numpy as np

from katcli.density.weights import weight_statistics
from katcli.report.context import ReportContext
from katcli.report.document import Figure, Paragraph, Section, fmt, fmt_sig, small_sample_note, table
from katcli.report.plotting import colour, plain_log_ticks
from katcli.report.sections import SectionSpec
from katcli.viz.inputs import load_embedding_inputs, read_prompts, truncate
from katcli.viz.sampling import rarest_first
from katcli.workspace import paths as P

SHOWN = 5
BINS = 15
TEXT_CHARS = 110
INPUTS = (P.EMBEDDINGS, P.DENSITY_WEIGHTS, P.EMBED_IDS, P.EMBED_METADATA, P.PREFIXES)


def histogram(relative: np.ndarray, bins: int = BINS) -> tuple[np.ndarray, np.ndarray]:
    """Counts in `bins` log-spaced bins spanning the values (one bin when they are all equal), and the edges."""
    lo, hi = float(relative.min()), float(relative.max())
    if hi <= lo * (1 + 1e-9):
        edges = np.array([lo / 1.05, hi * 1.05])
    else:
        edges = np.geomspace(lo, hi, bins + 1)
    counts, _ = np.histogram(relative, bins=edges)
    return counts, edges


def build(ctx: ReportContext) -> Section | None:
    if not all(ctx.exists(rel) for rel in INPUTS):
        return None
    emb, weights_path, ids, metadata, prefixes = (ctx.read(rel) for rel in INPUTS)
    inputs = load_embedding_inputs(emb, weights_path, ids, metadata)
    w = inputs.weights
    n = inputs.n
    stats = weight_statistics(w.astype(np.float32))
    relative = w * n
    counts, edges = histogram(relative)

    def draw(fig) -> None:
        ax = fig.add_subplot()
        ax.hist(relative, bins=edges, color=colour(0), edgecolor="white")
        ax.set_xscale("log")
        plain_log_ticks(ax.xaxis, float(edges[-1] / edges[0]))
        ax.axvline(1.0, color="black", linestyle="--", linewidth=1, label="uniform weight 1/N")
        ax.set_xlabel("density weight × N (log scale; > 1: rarer than average)")
        ax.set_ylabel("prompts")
        ax.legend()

    hist_rows = [[f"{a:.3g}–{b:.3g}", f"{c:,}"] for a, b, c in zip(edges[:-1], edges[1:], counts)]
    caption = (f"Density weights of {n:,} prompts as multiples of the uniform weight 1/N, in {len(counts)} "
               f"log-spaced bins; max/min {fmt_sig(stats['max_min_ratio'])}, effective sample size "
               f"{stats['ess']:,.1f} ({100 * stats['ess_fraction']:.1f}% of N).{small_sample_note(n)}")
    figure = Figure("density-weights", "Density weights", caption, draw,
                    table(["Weight × N", "Prompts"], hist_rows))

    order = rarest_first(w)
    rarest = [int(i) for i in order[:SHOWN]]
    densest = [int(i) for i in np.lexsort((np.arange(n), w))[:SHOWN]]
    prompts = read_prompts(prefixes, inputs.ids, np.array(sorted(set(rarest + densest))), progress=ctx.progress)

    def prompt_rows(rows: list[int]) -> list[list[str]]:
        return [[str(k + 1), str(inputs.ids[i]), fmt(float(relative[i]), 2), prompts[i].src,
                 truncate(prompts[i].text.replace("\n", " "), TEXT_CHARS)] for k, i in enumerate(rows)]

    cols = ["#", "Prefix id", "Weight × N", "Source", "Prompt"]
    numeric = (True, False, True, False, False)
    section = Section("density", "Prompt density")
    section.add(
        table(["Statistic", "Value"], [
            ["prompts (N)", f"{n:,}"],
            ["max/min weight ratio", fmt_sig(stats["max_min_ratio"])],
            ["effective sample size (1/Σw²)", f"{stats['ess']:,.1f}"],
            ["ESS / N", fmt(stats["ess_fraction"])],
            ["k nearest neighbours", str(inputs.metadata.get("k", "–"))],
            ["weight power", str(inputs.metadata.get("power", "–"))],
        ]),
        figure,
        Paragraph(f"The {len(rarest)} rarest prompts (highest weight):"),
        table(cols, prompt_rows(rarest), numeric),
        Paragraph(f"The {len(densest)} densest prompts (lowest weight):"),
        table(cols, prompt_rows(densest), numeric),
    )
    return section


SPEC = SectionSpec("density", "Prompt density", build)
