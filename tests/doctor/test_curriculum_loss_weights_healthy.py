"""A curriculum of loss weights: ``loss = beta * ce + alpha * mse`` with the classification weight ramped up and
the reconstruction weight faded out over the first epochs. The loss curve rises with the weight, not with the
rate, so the learning-rate reading is redone from where the weight holds its last value; the same loop at a rate
far too high is still named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.verdict import Verdict
from trainwell.doctor.weighted_curve import reread_after_weights, weights_settle

NAME = "learning rate (loss curve)"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(32, 64), nn.ReLU())
        self.cls, self.rec = nn.Linear(64, 10), nn.Linear(64, 32)

    def forward(self, x):
        h = self.body(x)
        return self.cls(h), self.rec(h)


def _run(lr: float):
    torch.manual_seed(0)
    x = torch.randn(640, 32)
    y = x[:, :10].argmax(1)
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with doctor.watch(model, opt, every=10) as w:
        for epoch in range(10):
            alpha, beta = max(0.0, 1.0 - epoch / 3), min(1.0, 0.25 + 0.25 * epoch)  # the curriculum
            for i in torch.randperm(640).split(64):
                logits, rec = model(x[i])
                loss = beta * F.cross_entropy(logits, y[i]) + alpha * F.mse_loss(rec, x[i])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i])
    return {v.check: v for v in w.report().verdicts}


@pytest.fixture(scope="module")
def reports():
    return {lr: _run(lr) for lr in (5e-3, 3.0)}


@pytest.mark.slow
def test_a_curriculum_of_loss_weights_is_not_read_as_a_bouncing_rate(reports):
    v = reports[5e-3][NAME]
    assert v.status in ("pass", "info") and "holds its last value" in v.value, v


@pytest.mark.slow
def test_the_same_curriculum_at_a_rate_far_too_high_is_still_named(reports):
    v = reports[3.0][NAME]
    assert v.status in ("warn", "fail") and str(v.value).startswith("too high"), v


def _steps(weights, rows=64):
    return [{"step": i * 10, "form": "cross_entropy", "loss_weight": w, "rows": rows} for i, w in enumerate(weights)]


def test_the_curve_is_read_again_from_where_the_weight_settles():
    assert weights_settle(_steps([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])) == 30
    assert weights_settle(_steps([1.0] * 6)) is None  # no schedule
    assert weights_settle([{"step": i, "form": "cross_entropy", "loss_weight": r, "rows": r}
                           for i, r in enumerate((64, 64, 16, 64))]) is None  # a summed loss: the rows' weight
    bouncing = Verdict(NAME, "warn", "too high: the loss oscillates", "-", "lower")
    good = Verdict(NAME, "pass", "good: falling", "-", "")
    losses = [1.0] * 60
    again = reread_after_weights(bouncing, _steps([0.25, 0.5, 1.0, 1.0, 1.0, 1.0]), losses, lambda start: good)
    assert again.status == "pass" and "from step 21 on" in again.value
    assert reread_after_weights(bouncing, _steps([0.25, 0.5, 1.0, 1.0, 1.0, 1.0]), losses,
                                lambda start: bouncing) is bouncing  # still too high once the weights hold


def test_a_rise_far_beyond_the_weights_change_is_left_to_the_rate():
    """A schedule that grows the weight 4x lifts the loss 4x at most: a loss blown up 1e5x before the weights hold
    (Adam at lr 3 on the curriculum above) keeps the whole run's "too high", whatever the later steps read."""
    spiked = Verdict(NAME, "fail", "too high: the loss spiked", "-", "lower")
    good = Verdict(NAME, "pass", "good: falling", "-", "")
    steps = _steps([0.25, 0.5, 1.0, 1.0, 1.0, 1.0])
    blown = [1.6, 50.0, 1.6e5] + [40.0] * 57
    assert reread_after_weights(spiked, steps, blown, lambda start: good) is spiked
    lifted = [1.6, 3.0, 6.0] + [2.0 - i / 60 for i in range(57)]  # up with the weight (4x), then falling: the schedule
    assert reread_after_weights(spiked, steps, lifted, lambda start: good).status == "pass"
