"""Logits clamped after the last layer (``out.clamp(-0.5, 0.5)`` "for stability") under cross-entropy: the watch's
``loop: loss`` and the check's failed overfit name a clamp (scores tied at both bounds), not a ReLU or a sigmoid;
the same model's raw logits pass, and a sigmoid's or a ReLU's outputs are not read as clamped."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.clamped_scores import clamped


class Classifier(nn.Module):
    def __init__(self, clamp: bool):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 4))
        self.clamp = clamp

    def forward(self, x):
        out = self.body(x)
        return out.clamp(-0.5, 0.5) if self.clamp else out  # meant to keep the logits "stable"


def _data():
    g = torch.Generator().manual_seed(0)
    x = 3 * torch.randn(256, 6, generator=g)
    return x, x[:, :4].argmax(1)


def _watch(clamp: bool):
    x, y = _data()
    torch.manual_seed(0)
    model = Classifier(clamp)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with doctor.watch(model, opt, every=2) as w:
        for i in range(0, 256, 32):
            opt.zero_grad()
            loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
            loss.backward()
            opt.step()
            w.step(loss, y=y[i:i + 32])
    return next(v for v in w.report().verdicts if v.check == "loop: loss")


@pytest.fixture(scope="module")
def losses():
    return {clamp: _watch(clamp) for clamp in (True, False)}


@pytest.mark.slow
def test_clamped_logits_are_named_in_the_loop(losses):
    v = losses[True]
    assert v.status == "warn" and "a clamp after the last layer" in v.value and "ReLU after" not in v.value
    assert "in [-0.5, 0.5]" in v.value


@pytest.mark.slow
def test_raw_logits_pass_in_the_loop(losses):
    assert losses[False].status not in ("warn", "fail")


@pytest.mark.slow
def test_the_failed_overfit_names_the_clamp():
    x, y = _data()
    torch.manual_seed(0)
    verdicts = doctor.check(Classifier(True), x, y, F.cross_entropy)
    overfit = next(v for v in verdicts if v.check == "overfit a tiny subset")
    assert overfit.status == "fail" and "a clamp after the last layer" in overfit.advice


def test_sigmoid_and_relu_outputs_are_not_clamped():
    z = 4 * torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    assert clamped(torch.sigmoid(z)) is None and clamped(torch.relu(z)) is None and clamped(z) is None
    assert clamped(z.clamp(-1, 1)) is not None


def test_columns_constant_at_their_own_values_are_not_a_clamp():
    """A network whose hidden ReLUs all died outputs its last layer's biases: each class's column constant, the
    minimum in one column and the maximum in another - not a clamp; clamped scores reach a bound in many columns."""
    dead = torch.tensor([-0.381, 0.4885, 0.1]).repeat(64, 1)
    assert clamped(dead) is None
    g = torch.Generator().manual_seed(0)
    assert "a clamp after the last layer" in clamped((5 * torch.randn(64, 3, generator=g)).clamp(-1, 1))
