"""Prompt density: how the density weights of `kat embed` are spread, and which prompts are rarest and densest.

Reads `data/embeddings_offline/` and `data/prefixes_all.jsonl` with the viz stage's checked loaders (shapes,
finiteness, id order against the prefixes file) and summarises the weights with `kat embed`'s own statistics
(max/min ratio, Kish's effective sample size). Weights are shown as multiples of the uniform weight 1/N. Rarest
and densest are ranked by weight (ties by row), as `kat viz` ranks them: the files keep weights, not densities.
Present when the embeddings, weights, ids and prefixes all exist. Each named weight set (`kat embed --name`) gets
its own histogram and statistics after the default's, and one table compares them all.
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


def weights_figure(key: str, title: str, w: np.ndarray, what: str = "Density weights") -> tuple[Figure, dict]:
    """The histogram of one set of weights (× N, log bins) and its statistics."""
    n = len(w)
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
    caption = (f"{what} of {n:,} prompts as multiples of the uniform weight 1/N, in {len(counts)} "
               f"log-spaced bins; max/min {fmt_sig(stats['max_min_ratio'])}, effective sample size "
               f"{stats['ess']:,.1f} ({100 * stats['ess_fraction']:.1f}% of N).{small_sample_note(n)}")
    return Figure(key, title, caption, draw, table(["Weight × N", "Prompts"], hist_rows)), stats


def build(ctx: ReportContext) -> Section | None:
    if not all(ctx.exists(rel) for rel in INPUTS):
        return None
    emb, weights_path, ids, metadata, prefixes = (ctx.read(rel) for rel in INPUTS)
    inputs = load_embedding_inputs(emb, weights_path, ids, metadata)
    w = inputs.weights
    n = inputs.n
    relative = w * n
    figure, stats = weights_figure("density-weights", "Density weights", w)

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
    _named_sets(ctx, section, n, stats, inputs.metadata)
    return section


def _set_row(name: str, meta: dict, stats: dict) -> list[str]:
    ratio = meta.get("max_ratio")
    return [name, str(meta.get("k", "–")), str(meta.get("power", "–")), "–" if ratio is None else fmt_sig(ratio),
            fmt_sig(stats["max_min_ratio"]), f"{stats['ess']:,.1f}", fmt(stats["ess_fraction"])]


def _named_sets(ctx: ReportContext, section: Section, n: int, default_stats: dict, default_meta: dict) -> None:
    """Each `kat embed --name` set: its histogram, then one table of every set side by side."""
    import json

    from katcli.density.artifacts import read_weights

    rows = [_set_row(P.DEFAULT_WEIGHT_SET, default_meta, default_stats)]
    blocks = []
    for name in ctx.run_dirs(P.WEIGHT_SETS_DIR, "density_weights.npy"):
        meta_rel = P.weight_set_metadata(name)
        if not ctx.exists(meta_rel):
            continue
        w = read_weights(ctx.read(P.weight_set_weights(name)), rows=n, rows_are=f"the embeddings have {n} rows")
        meta = json.loads(ctx.read(meta_rel).read_text(encoding="utf-8"))
        figure, stats = weights_figure(f"density-weights-{name}", f"Density weights: set {name}", w,
                                       f"Set {name}'s density weights")
        blocks.append(figure)
        rows.append(_set_row(name, meta, stats))
    if not blocks:
        return
    section.add(
        Paragraph("Weight sets of the same embeddings (`kat embed --name`), each a weighting a density-aware run can "
                  "sample by (`--weights NAME`); held-out quintiles are always cut on the default set."),
        table(["Set", "k", "Power", "Max ratio", "max/min", "ESS", "ESS / N"], rows,
              (False, True, True, True, True, True, True)),
        *blocks,
    )


SPEC = SectionSpec("density", "Prompt density", build)
