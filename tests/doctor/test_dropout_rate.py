"""torch's nn.Dropout(p) drops a unit with probability p; the dropout paper and the lecture write p for keeping
one. ``nn.Dropout(0.9)`` meant as "keep 90%" keeps 10%: named by check and watch, with the p that was meant."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.dropout_rate import HIGH, dropout_rate_verdict, high_dropout
from trainwell.doctor.loop_deferral import SCALE_DRIVEN


def _data(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = 3 * torch.randn(5, 16, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 5, (n,), generator=g)
    return centers[y] + torch.randn(n, 16, generator=g), y


def _model(p):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Dropout(p), nn.Linear(128, 128), nn.ReLU(),
                         nn.Dropout(p), nn.Linear(128, 5))


def _watched(p):
    x, y = _data()
    model = _model(p)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    with doctor.watch(model, opt, every=8) as w:
        for _ in range(4):
            model.train()
            for i in range(0, len(x), 32):
                loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i:i + 32])
    return {v.check: v for v in w.report().verdicts}


def test_the_modules_that_drop_most_of_their_inputs_are_found():
    model = nn.Sequential(nn.Dropout(0.1), nn.Linear(4, 4), nn.Dropout2d(0.9), nn.AlphaDropout(0.5))
    assert high_dropout(model) == [("2", 0.9)]
    assert HIGH > 0.5  # the dropout paper's rate for hidden units is never called high


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_check_names_dropout_that_keeps_a_tenth_and_the_overfit_defers_to_it():
    x, y = _data(64)
    model = _model(0.9)
    report = doctor.check(model, x, y, F.cross_entropy)
    v = {v.check: v for v in report.verdicts}
    rate = v["dropout rate"]
    assert rate.status in ("warn", "fail") and "p = 0.9: it drops 90%" in rate.value and "(and 1 more)" in rate.value
    assert "nn.Dropout(p=0.1)" in rate.advice
    if v["overfit a tiny subset"].status == "fail":  # dropping 90% of the units stops 20 examples being memorized
        assert rate.status == "fail" and "fix 'dropout rate' first" in v["overfit a tiny subset"].advice


def test_check_of_a_usual_rate_says_nothing_about_it():
    x, y = _data(64)
    assert "dropout rate" not in {v.check for v in doctor.check(_model(0.2), x, y, F.cross_entropy).verdicts}


def test_watch_names_it_and_the_loss_curve_defers_to_it():
    v = _watched(0.9)
    assert v["loop: dropout rate"].status == "warn" and "drops 90%" in v["loop: dropout rate"].value
    assert v["learning rate (loss curve)"].status == "info"
    assert "explained by" in v["learning rate (loss curve)"].value
    assert v["loop: loss"].status in ("pass", "info")  # a large first loss from the kept units' 10x scale
    assert not [c for c, r in v.items() if r.status == "warn" and c in SCALE_DRIVEN]  # dead units follow from it


def test_watch_of_a_healthy_rate_has_no_dropout_verdict():
    v = _watched(0.3)
    assert "loop: dropout rate" not in v
    assert not [c for c, r in v.items() if r.status == "fail"]


def test_p_of_one_fails():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(1.0), nn.Linear(8, 2))
    v = dropout_rate_verdict(model)
    assert v.status == "fail" and "p = 1" in v.value
