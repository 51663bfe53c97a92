"""A triplet loss with a margin of 0: every constant embedding already reaches its minimum 0, so the loss has
nothing to teach; the input-independent baseline names that instead of asking whether the input is connected."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


def _triplet(margin):
    def loss(emb, y):  # hand-written: torch's TripletMarginLoss refuses margin=0
        same = y[:, None] == y[None, :]
        pos = (same & ~torch.eye(len(y), dtype=torch.bool)).float().argmax(1)
        neg = (~same).float().argmax(1)
        return F.relu((emb - emb[pos]).norm(dim=1) - (emb - emb[neg]).norm(dim=1) + margin).mean()
    return loss


def _baseline(margin):
    torch.manual_seed(0)
    centres = torch.randn(4, 20) * 2
    y = torch.arange(256) % 4
    x = centres[y] + torch.randn(256, 20)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 16))
    report = doctor.check(model, x, y, _triplet(margin), optimizer=torch.optim.Adam(model.parameters(), 1e-3))
    return next(v for v in report.verdicts if v.check == "input-independent baseline")


@pytest.mark.slow  # ~0.5 s: a watched loop or check run
def test_a_margin_of_zero_is_named_as_leaving_nothing_to_learn():
    verdict = _baseline(0.0)
    assert verdict.status in ("warn", "fail") and "input-independent 0" in verdict.value
    assert "one output for every input already reaches a loss of 0" in verdict.advice
    assert "margin of 0" in verdict.advice


def test_a_margin_of_one_is_not_told_so():
    assert "reaches a loss of 0" not in _baseline(1.0).advice


def _watched(margin, epochs=5):
    torch.manual_seed(0)
    centres = torch.randn(4, 20) * 2
    y = torch.arange(1024) % 4
    x = centres[y] + torch.randn(1024, 20)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 16))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = _triplet(margin)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(epochs):
            for xb, yb in torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64,
                                                      shuffle=True):
                loss = loss_fn(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    return w


@pytest.mark.slow  # ~0.4 s: a watched loop or check run
def test_watch_names_a_margin_of_zero():
    w = _watched(0.0)
    assert w.losses[0] == 0.0  # the oracle: the untrained model already meets the loss
    report = w.report()
    v = report["loop: loss already met"]
    assert v.status == "fail" and "margin of 0" in v.advice, v
    curve = report["learning rate (loss curve)"]
    assert curve.status not in ("warn", "fail"), curve  # no learning-rate advice for a loss with nothing to teach


@pytest.mark.slow  # ~0.4 s: a watched loop or check run
def test_watch_does_not_name_a_margin_of_one():
    report = _watched(1.0).report()
    assert all(v.check != "loop: loss already met" for v in report.verdicts)
    assert not [v for v in report.verdicts if v.status in ("warn", "fail")]
