"""Bayes by backprop (Blundell et al. 2015): the loss is the mean cross-entropy plus the KL of the weights'
posterior to the prior over the number of training examples, about 24 at init against the cross-entropy's ln 10.
The watch read the first loss (26) as a cross-entropy far above ln C and warned "initial outputs are far from
uniform"; the first step's outputs' own cross-entropy is ln C, so the rest is a term the outputs do not carry. A
last layer initialized 30x too large still warns."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


class BayesLinear(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.mu = nn.Parameter(torch.empty(o, i).uniform_(-1 / math.sqrt(i), 1 / math.sqrt(i)))
        self.rho = nn.Parameter(torch.full((o, i), -5.0))
        self.b = nn.Parameter(torch.zeros(o))

    def forward(self, x):
        sigma = F.softplus(self.rho)
        return F.linear(x, self.mu + sigma * torch.randn_like(sigma), self.b)

    def kl(self):
        sigma = F.softplus(self.rho)
        return (0.5 * (sigma ** 2 + self.mu ** 2 - 1) - sigma.log()).sum()


class BNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1, self.l2 = BayesLinear(20, 64), BayesLinear(64, 10)

    def forward(self, x):
        return self.l2(F.relu(self.l1(x)))

    def kl(self):
        return self.l1.kl() + self.l2.kl()


def _loss_verdict(model, penalty):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(256, 20, generator=g), torch.randint(0, 10, (256,), generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=2) as w:
        for i in range(0, 256, 32):
            loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32]) + penalty(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i:i + 32])
    return next(v for v in w.report().verdicts if v.check == "loop: loss")


@pytest.mark.slow  # seconds
def test_a_kl_term_over_the_weights_is_not_read_as_outputs_far_from_uniform():
    torch.manual_seed(0)
    v = _loss_verdict(BNN(), lambda m: m.kl() / 256)
    assert v.status == "pass", v
    assert "a term added to the loss that the outputs do not carry" in v.value, v


@pytest.mark.slow  # 0.2-0.9 s
def test_a_last_layer_initialized_too_large_is_still_warned():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 10))
    with torch.no_grad():
        model[2].weight.mul_(30)
    v = _loss_verdict(model, lambda m: 0.0)
    assert v.status == "warn" and "far from uniform" in v.advice, v
