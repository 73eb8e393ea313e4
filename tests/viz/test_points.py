"""Density recovered from the weights, rounding, and the document's canonical JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from katcli.viz.points import density_from_weights, dumps_document, find_param, round_sig


def _weights(density: np.ndarray, eps: float, power: float) -> np.ndarray:
    w = (density + eps) ** -power
    return (w / w.sum()).astype(np.float32)


@pytest.mark.parametrize("power", [0.5, 1.0, 2.0])
def test_relative_density_is_exact_up_to_the_densest(power):
    rng = np.random.default_rng(0)
    density = rng.uniform(0.05, 0.95, size=500)
    eps = 1e-3
    view = density_from_weights(_weights(density, eps, power), {"eps": eps, "power": power})
    assert view.kind == "relative"
    expected = (density + eps) / (density.max() + eps)
    np.testing.assert_allclose(view.values, expected, rtol=1e-5)
    assert view.values.max() == 1.0


def test_absolute_density_when_the_densest_value_is_recorded():
    density = np.linspace(0.1, 0.9, 50)
    meta = {"density": {"eps": 0.01, "power": 1.5, "density_max": 0.9}}
    view = density_from_weights(_weights(density, 0.01, 1.5), meta)
    assert view.kind == "absolute"
    np.testing.assert_allclose(view.values, density, rtol=1e-5, atol=1e-6)


def test_no_density_without_parameters_or_with_power_zero():
    w = np.full(4, 0.25)
    assert density_from_weights(w, {}).kind == "none"
    none = density_from_weights(w, {"eps": 1e-3, "power": 0.0})
    assert none.values is None and none.kind == "none"


def test_find_param_looks_one_level_deep_and_ignores_non_numbers():
    meta = {"eps": "x", "params": {"eps": 0.002, "power": True}, "density": {"power": 2}}
    assert find_param(meta, "eps") == 0.002
    assert find_param(meta, "power") == 2.0
    assert find_param(meta, "k") is None


def test_round_sig():
    assert round_sig(1.23456789) == 1.23457
    assert round_sig(-0.000123456789) == -0.000123457
    assert round_sig(0.0) == 0.0 and json.dumps(round_sig(-0.0)) == "0.0"


def test_dumps_is_canonical():
    a = dumps_document({"b": 1, "a": [1.5, "é"]})
    assert a == '{"a":[1.5,"é"],"b":1}\n'
    with pytest.raises(ValueError):
        dumps_document({"x": float("nan")})
