"""A flat loss curve at a rate far too low is told the factor its update/weight ratio measured (the gap to cs231n's
healthy ~1e-3), in the loop's own rate, not a fixed 10x."""

import re

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.rate_numbers import with_rate
from trainwell.doctor.verdict import Verdict
from trainwell.doctor.watch_verdicts import rate_factor


def _watched(lr):
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for _epoch in range(3):
            for i in range(0, 256, 32):
                opt.zero_grad()
                loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
                loss.backward()
                opt.step()
                w.step(loss, y=y[i:i + 32])
    return w.report()["learning rate (loss curve)"]


def test_the_factor_is_the_measured_gap_and_the_rates_are_the_loops_own():
    curve = _watched(1e-5)
    assert curve.status == "warn" and curve.value.startswith("flat"), curve
    found = re.search(r"update/weight ratio is ([\d.e+-]+), (\d+)x below the healthy ~1e-3: raise the learning rate "
                      r"\(by ([\d.]+)-(\d+)x: from 1e-05 to ([\d.e+-]+)-([\d.e+-]+)\)", curve.advice)
    assert found, curve.advice
    ratio, gap, least, most, low, high = (float(g) for g in found.groups())
    assert gap > 20  # SGD at 1e-5 here: its steps are tens of times too small, more than the old fixed 10x
    assert abs(gap - 1e-3 / ratio) <= 0.05 * gap and most == gap and abs(least - gap / 3) <= 0.05 * gap
    assert abs(low - 1e-5 * least) <= 0.05 * low and abs(high - 1e-5 * most) <= 0.05 * high


def test_a_rate_too_high_is_lowered_by_its_measured_factor():
    assert rate_factor(2.5e-5) == "(by 13-40x)" and rate_factor(0.5) == "(by 170-500x)"
    assert rate_factor(0.0) == "(by 10x)"  # no weight moved at all: no gap to measure
    high = Verdict("learning rate (loss curve)", "warn", "flat", "", f"lower the learning rate {rate_factor(0.05)}")
    assert with_rate(high, [2.0] * 3, []).advice == "lower the learning rate (by 17-50x: from 2 to 0.04-0.12)"
