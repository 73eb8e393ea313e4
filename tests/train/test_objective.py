"""Losses, schedule and metrics: the pure parts of training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from katcli.train.rm_sft_losses import bradley_terry, centering, pair_loss
from katcli.train.metrics import Accuracy, EvalReport, density_quintiles, summarize, wilson_interval
from katcli.train.schedule import default_warmup, lr_at


def test_bradley_terry_values_and_stability():
    rc = torch.tensor([0.0, 2.0, -2.0, 200.0, -200.0])
    rr = torch.zeros(5)
    loss = bradley_terry(rc, rr)
    assert loss[0].item() == pytest.approx(math.log(2))
    assert loss[1].item() == pytest.approx(math.log1p(math.exp(-2)))
    assert loss[2].item() == pytest.approx(2 + math.log1p(math.exp(-2)))
    assert loss[3].item() == pytest.approx(0.0, abs=1e-30)
    assert loss[4].item() == pytest.approx(200.0)
    assert torch.isfinite(loss).all()


def test_bradley_terry_is_shift_invariant_and_centering_is_not():
    rc, rr = torch.tensor([1.0, -0.5]), torch.tensor([0.2, 0.7])
    assert torch.allclose(bradley_terry(rc + 5, rr + 5), bradley_terry(rc, rr))
    assert centering(rc, rr).tolist() == pytest.approx([1.44, 0.04])


def test_pair_loss_gradient_pushes_chosen_up_and_rejected_down():
    rc = torch.tensor([0.3], requires_grad=True)
    rr = torch.tensor([0.1], requires_grad=True)
    pl = pair_loss(rc, rr, center_coef=0.0)
    pl.total.sum().backward()
    assert rc.grad.item() < 0 < rr.grad.item()
    assert pl.correct.item() == 1.0 and pl.margin.item() == pytest.approx(0.2)
    with_center = pair_loss(torch.tensor([3.0]), torch.tensor([1.0]), center_coef=0.5)
    assert with_center.total.item() == pytest.approx(math.log1p(math.exp(-2)) + 0.5 * 16)


def test_schedule_warms_up_then_decays_to_the_floor():
    kw = dict(peak=1.0, total_steps=100, warmup_steps=10, min_ratio=0.1)
    assert lr_at(0, **kw) == pytest.approx(0.1)
    assert lr_at(9, **kw) == pytest.approx(1.0)
    assert lr_at(10, **kw) == pytest.approx(1.0)
    assert lr_at(99, **kw) == pytest.approx(0.1)
    rates = [lr_at(s, **kw) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert lr_at(0, peak=0.5, total_steps=1, warmup_steps=0) == 0.5
    assert default_warmup(1000) == 50 and default_warmup(10) == 1 and default_warmup(100000) == 100


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(50, 50)
    assert hi == 1.0 and 0.92 < lo < 0.94


def test_quintiles_split_prompts_into_equal_groups_lowest_weight_first():
    pids = [f"p{i}" for i in range(10)] + ["p0", "p9"]
    weights = {f"p{i}": float(10 - i) for i in range(10)}  # p9 has the lowest weight
    quint, ranges = density_quintiles(pids, weights)
    assert quint[:10] == [4, 4, 3, 3, 2, 2, 1, 1, 0, 0]
    assert quint[10:] == [4, 0]
    assert ranges == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0], [9.0, 10.0]]


def test_summarize_groups_and_round_trips():
    margins = np.array([1.0, -1.0, 0.5, 0.0, 2.0])
    report = summarize(margins, np.zeros(5), ["a", "a", "b", "b", "b"], [f"p{i}" for i in range(5)],
                       {f"p{i}": float(i) for i in range(5)})
    assert report.overall == Accuracy(5, 3)
    assert report.by_source == {"a": Accuracy(2, 1), "b": Accuracy(3, 2)}
    assert [q.correct for q in report.by_quintile] == [1, 0, 1, 0, 1]
    assert report.ties == 1
    again = EvalReport.from_json(report.to_json())
    assert again.to_json() == report.to_json()
    no_weights = summarize(margins, np.zeros(5), ["a"] * 5, ["p"] * 5)
    assert no_weights.by_quintile is None and no_weights.to_json()["by_quintile"] is None
