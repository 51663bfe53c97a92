"""A layer reset on purpose once mid-run (``model.head.reset_parameters()``) makes the loss jump back up and fall
again; read over the whole run that jump looks like a rate that bounces ("too high: oscillates"). The watch saw
the partial reset, so the loss curve is read from the reset on; a rate that is too high is still named."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.curve_reading import learning_rate_diagnosis
from trainwell.doctor.reset_curve import reread_after_reset

CURVE = "learning rate (loss curve)"


def _curve(jump: float) -> list[float]:
    """Two exponential falls of 128 steps each, the second starting at ``jump`` (a reset there), with a small
    deterministic wobble standing for the batch noise."""
    return [(1.3 if t < 128 else jump) * math.exp(-(t % 128) / 15) + 0.1 + 0.02 * math.sin(t * 1.7)
            for t in range(256)]


def test_a_reset_jump_is_read_from_the_reset_on():
    losses = _curve(1.0)
    whole = learning_rate_diagnosis(losses)
    assert whole.value.startswith("too high")  # the jump read as a bouncing rate
    curve = reread_after_reset(whole, [(128, ["head.bias", "head.weight"])], losses,
                               lambda start: learning_rate_diagnosis(losses[start:]))
    assert curve.status == "pass" and curve.value.startswith("from the partial reset of 'head.bias', 'head.weight'")
    assert "good" in curve.value


def test_without_a_reset_or_with_routine_writes_the_whole_run_is_read():
    losses = _curve(1.0)
    whole = learning_rate_diagnosis(losses)

    def read(start):
        return learning_rate_diagnosis(losses[start:])
    assert reread_after_reset(whole, [], losses, read) is whole
    every = [(s, ["head.bias"]) for s in range(10, 250, 10)]  # a weight zeroed every 10 steps: no re-initialization
    assert reread_after_reset(whole, every, losses, read) is whole
    assert reread_after_reset(whole, [(250, ["head.weight"])], losses, read) is whole  # too few steps after it


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(20, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU())
        self.head = nn.Linear(128, 4)

    def forward(self, x):
        return self.head(self.body(x))


def _run(lr: float):
    """Eight epochs of 32 Adam steps on a 4-class problem; the head reset on purpose at the top of epoch 4."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 20, generator=g)
    y = (x @ torch.randn(20, 4, generator=g)).argmax(1)
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with doctor.watch(model, opt, every=20) as w:
        for epoch in range(8):
            if epoch == 4:
                model.head.reset_parameters()  # re-learn the head
            for i in range(0, 2048, 64):
                loss = F.cross_entropy(model(x[i:i + 64]), y[i:i + 64])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i:i + 64])
    return {v.check: v for v in w.report().verdicts}


@pytest.fixture(scope="module")
def runs():
    return {lr: _run(lr) for lr in (5e-4, 0.1)}


@pytest.mark.slow
def test_a_head_reset_mid_run_is_not_read_as_a_high_rate(runs):
    verdicts = runs[5e-4]
    assert "loop: weights initialized once" not in verdicts  # a partial reset on purpose
    curve = verdicts[CURVE]
    assert curve.status == "pass" and "too high" not in curve.value
    assert curve.value.startswith("from the partial reset of 'head.bias', 'head.weight' after step 128 on")


@pytest.mark.slow
def test_a_rate_too_high_is_still_named_with_a_reset(runs):
    curve = runs[0.1][CURVE]
    assert curve.status in ("warn", "fail") and curve.value.startswith("too high")
