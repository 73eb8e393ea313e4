"""Assemble the viz data document: one record per shown prompt plus what the projection means.

The document (`viz/embeddings_3d.json`, also embedded in the page) is

    {"format": "kat-viz/1", "n_total", "n_shown", "n_rare_kept", "max_points", "seed",
     "projection": {"method", "explained_variance_ratio", "fitted_on", "params"},
     "density": {"kind", "eps", "power", "note"}, "sources": {src: count},
     "points": [{"id", "x", "y", "z", "weight", "density", "src", "text"}, ...]}

with points in embedding row order and numbers rounded to 6 significant digits, so the same inputs give
byte-identical output.

**Density is derived, not recomputed.** `kat embed` saves only the weights, made as
`weight = (density + eps) ** -power / Z`. With eps and power from the metadata, `(density + eps)` is recovered
exactly up to the unknown normaliser Z, so each point's density is reported *relative to the densest prompt*:
`(density + eps) / (density_max + eps) = (weight / weight_min) ** (-1 / power)`, in (0, 1], 1 = densest.
When the metadata also records the densest prompt's absolute density, the absolute value is recovered
instead. Weights clipped by `--max-ratio` map to the same (floor) density. Without eps/power (or with power 0,
where weights carry no density information) `density` is null.

This module knows nothing about files, the workspace or HTML.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from katcli.viz.inputs import Prompt
from katcli.viz.projection import Projection
from katcli.viz.sampling import Selection

FORMAT = "kat-viz/1"
SIGNIFICANT_DIGITS = 6
#: Metadata keys that may carry the densest prompt's absolute density (first found wins).
_DENSEST_KEYS = ("density_max", "max_density")


@dataclass(frozen=True)
class DensityView:
    values: np.ndarray | None  # float64 [N] or None when not derivable
    kind: str  # "relative" | "absolute" | "none"
    eps: float | None
    power: float | None
    note: str


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def find_param(metadata: Mapping[str, Any], key: str) -> float | None:
    """A numeric metadata value by name, at the top level or one object deep (e.g. `{"density": {"eps": …}}`)."""
    found = _num(metadata.get(key))
    if found is not None:
        return found
    for value in metadata.values():
        if isinstance(value, Mapping):
            found = _num(value.get(key))
            if found is not None:
                return found
    return None


def density_from_weights(weights: np.ndarray, metadata: Mapping[str, Any]) -> DensityView:
    """Per-row density recovered from the weights and the eps/power recorded by `kat embed` (see module doc)."""
    eps = find_param(metadata, "eps")
    power = find_param(metadata, "power")
    if eps is None or power is None or power <= 0:
        return DensityView(
            values=None,
            kind="none",
            eps=eps,
            power=power,
            note="density could not be derived: the embeddings metadata records no eps and positive power",
        )
    w = np.asarray(weights, dtype=np.float64)
    relative = (w / w.min()) ** (-1.0 / power)  # (density + eps) / (density_max + eps), in (0, 1]
    densest = next((v for v in (find_param(metadata, k) for k in _DENSEST_KEYS) if v is not None), None)
    if densest is not None:
        values = np.clip(relative * (densest + eps) - eps, 0.0, 1.0)
        return DensityView(
            values=values,
            kind="absolute",
            eps=eps,
            power=power,
            note="mean cosine similarity to the k nearest neighbours, recovered from the weights",
        )
    return DensityView(
        values=relative,
        kind="relative",
        eps=eps,
        power=power,
        note="(density + eps) relative to the densest prompt, recovered from the weights: 1 = densest",
    )


def round_sig(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """`value` rounded to `digits` significant digits, as a float that serialises the same every time."""
    if value == 0 or not math.isfinite(value):
        return 0.0 if value == 0 else value
    return float(f"{value:.{digits}g}") + 0.0


def build_document(
    *,
    ids: list[Any],
    weights: np.ndarray,
    density: DensityView,
    selection: Selection,
    projection: Projection,
    prompts: Mapping[int, Prompt],
    seed: int,
    max_points: int,
) -> dict[str, Any]:
    """The viz data document for the selected rows (see module doc)."""
    rows = selection.indices
    if projection.coords.shape != (rows.shape[0], 3):
        raise ValueError(f"projection has shape {list(projection.coords.shape)} for {rows.shape[0]} rows")
    points = []
    for k, row in enumerate(rows.tolist()):
        x, y, z = (round_sig(float(v)) for v in projection.coords[k])
        prompt = prompts[row]
        points.append(
            {
                "id": ids[row],
                "x": x,
                "y": y,
                "z": z,
                "weight": round_sig(float(weights[row])),
                "density": None if density.values is None else round_sig(float(density.values[row])),
                "src": prompt.src,
                "text": prompt.text,
            }
        )
    evr = projection.explained_variance_ratio
    sources = Counter(p["src"] for p in points)
    return {
        "format": FORMAT,
        "n_total": selection.n_total,
        "n_shown": selection.n_shown,
        "n_rare_kept": selection.n_rare,
        "max_points": max_points,
        "seed": seed,
        "projection": {
            "method": projection.method,
            "explained_variance_ratio": None if evr is None else [round_sig(v) for v in evr],
            "fitted_on": projection.fitted_on,
            "params": projection.params,
        },
        "density": {
            "kind": density.kind,
            "eps": density.eps,
            "power": density.power,
            "note": density.note,
        },
        "sources": dict(sorted(sources.items())),
        "points": points,
    }


def dumps_document(document: Mapping[str, Any]) -> str:
    """Canonical JSON text: sorted keys, no extra whitespace, UTF-8 characters kept, trailing newline."""
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"
