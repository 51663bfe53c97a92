"""A capsule network's margin loss (Sabour et al. 2017) on class-capsule lengths: at init every length is near 0,
so only the label's length gets a gradient, -2 (0.9 - L_y) / B with nearly equal weights: NLL's form on a step,
and its value at 0 (0.81) is within 2% of the drop a softmax inside a cross-entropy makes (ln C - ln(e + C - 1) + 1
= 0.84 for C = 10). Neither is the bug: the loss's value on the step and its curve on constructed scores tell them
apart. NLL on raw scores and a softmax inside the cross-entropy are still named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

C = 10


def squash(s):
    n2 = (s ** 2).sum(-1, keepdim=True)
    return n2 / (1 + n2) * s / (n2 + 1e-8).sqrt()


class Capsules(nn.Module):
    """Primary capsules from a linear layer, class capsules by a learned transform; outputs their lengths."""

    def __init__(self):
        super().__init__()
        self.primary = nn.Linear(16, 8 * 4)
        self.W = nn.Parameter(0.02 * torch.randn(8, C, 6, 4))

    def forward(self, x):
        u = squash(self.primary(x).view(len(x), 8, 4))
        v = squash(torch.einsum("icdk,bik->bicd", self.W, u).mean(1))
        return v.norm(dim=-1)


def margin_loss(lengths, y):
    t = F.one_hot(y, C).float()
    return (t * F.relu(0.9 - lengths) ** 2 + 0.5 * (1 - t) * F.relu(lengths - 0.1) ** 2).sum(1).mean()


def softmax_inside(scores, y):  # the bug: cross-entropy applies its own softmax
    return F.cross_entropy(scores.softmax(-1), y)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 16, generator=g)
    return x, (x[:, :C] * 3).argmax(1)


def _watch(loss_fn, model):
    x, y = _data()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=10) as w:
        for i in range(0, 480, 32):
            loss = loss_fn(model(x[i:i + 32]), y[i:i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i:i + 32])
    return w.report()["loop: loss"]


@pytest.mark.slow  # ~0.4 s for both
def test_the_watch_does_not_read_a_capsule_margin_loss_as_nll_on_raw_scores():
    torch.manual_seed(0)
    healthy = _watch(margin_loss, Capsules())
    assert healthy.status != "fail" and "not log-probabilities" not in str(healthy.value), healthy
    torch.manual_seed(0)
    raw = _watch(F.nll_loss, nn.Linear(16, C))  # the bug: NLL on raw scores
    assert raw.status == "fail" and "not log-probabilities" in str(raw.value), raw


@pytest.mark.slow  # ~2 s: two pre-flights
def test_the_overfit_check_does_not_read_a_capsule_margin_loss_as_a_softmax_inside_the_loss():
    x, y = _data()
    torch.manual_seed(0)
    healthy = doctor.check(Capsules(), x[:128], y[:128], margin_loss)["overfit a tiny subset"]
    assert "softmax" not in healthy.advice, healthy
    torch.manual_seed(0)
    buggy = doctor.check(nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, C)), x[:128], y[:128],
                         softmax_inside)["overfit a tiny subset"]
    assert buggy.status == "fail" and "applies a softmax to the scores" in buggy.advice, buggy
