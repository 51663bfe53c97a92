"""The overfit check on regressions whose targets sit far from zero: the gap to close is measured from the best
constant output on the subset (the targets' variance for MSE), so a model that can only learn a constant (every
weight frozen but the output bias, an input that never reaches the output) fails, while a model that fits the
examples from their inputs passes however large the targets' offset."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.inputs import StructuredLoss, Targets
from trainwell.doctor.overfit import overfit_tiny_subset

FEATURES = 6


def _regression(n=256, seed=0):
    """Targets of mean ~50 and std ~3, a smooth function of the first two features."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=g)
    y = 50 + 4.5 * torch.tanh(x[:, :1] - x[:, 1:2]) + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


class Regressor(nn.Module):
    """A user's MLP regressor; ``blind`` has the forward read a learned start vector in place of the input (a
    typo: ``self.body(self.start...)`` for ``self.body(x)``)."""

    def __init__(self, blind=False):
        super().__init__()
        self.blind = blind
        self.start = nn.Parameter(torch.zeros(FEATURES))
        self.body = nn.Sequential(nn.Linear(FEATURES, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, x):
        return self.body(self.start.expand(len(x), -1) if self.blind else x)


def _overfit(report):
    return next(v for v in report.verdicts if v.check == "overfit a tiny subset")


@pytest.mark.slow  # ~0.6 s: a watched loop or check run
def test_a_regressor_that_never_reads_its_input_fails_the_overfit_on_targets_far_from_zero():
    x, y = _regression()
    torch.manual_seed(0)
    model = Regressor(blind=True)
    report = doctor.check(model, x, y, nn.MSELoss(), optimizer=torch.optim.Adam(model.parameters(), 1e-3))
    verdict = _overfit(report)
    variance = float(y[:20].var(unbiased=False))
    assert verdict.status == "fail", verdict.value
    assert f"{variance:.3g}" in verdict.value  # the best constant's loss on the subset: the targets' variance
    assert "no better than one constant output" in verdict.advice


@pytest.mark.slow  # seconds each
def test_an_mlp_regressor_fits_targets_of_mean_50_and_std_3():
    x, y = _regression()
    for seed in range(3):
        torch.manual_seed(seed)
        model = Regressor()
        report = doctor.check(model, x, y, nn.MSELoss(), optimizer=torch.optim.Adam(model.parameters(), 1e-3))
        assert _overfit(report).status == "pass", (seed, _overfit(report).value)


STATES = 12


class QNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(STATES, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, 2)

    def forward(self, x):
        return self.head(self.body(x))


def _td_batch(n=256, seed=0):
    """One-hot states, actions and TD targets of a chain whose values sit near 2 (a reward of 0.2 a step, discount
    0.9), spread 0.15 over the states: the same target for the same (state, action)."""
    g = torch.Generator().manual_seed(seed)
    s, a = torch.randint(0, STATES, (n,), generator=g), torch.randint(0, 2, (n,), generator=g)
    target = 2.0 + 0.15 * torch.sin(1.3 * s.float() + 2.0 * a.float())
    return F.one_hot(s, STATES).float(), Targets((a, target))


def _td_mse(q, y):
    return F.mse_loss(q.gather(1, y[0][:, None]).squeeze(1), y[1])


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_a_q_network_whose_only_learning_part_is_the_output_bias_fails_the_overfit():
    x, y = _td_batch()
    torch.manual_seed(0)
    frozen = QNet()
    for p in list(frozen.parameters())[:-1]:  # meant to freeze the body only: the output bias alone trains
        p.requires_grad_(False)
    verdict = overfit_tiny_subset(frozen, x, y, StructuredLoss(_td_mse))
    assert verdict.status == "fail", verdict.value
    assert "no better than one constant output" in verdict.advice


def test_a_q_network_with_its_body_frozen_as_meant_still_fits_its_td_targets():
    x, y = _td_batch()
    for seed in range(4):
        torch.manual_seed(seed)
        net = QNet()
        for p in list(net.parameters())[:2]:  # the first layer frozen: the rest learns
            p.requires_grad_(False)
        verdict = overfit_tiny_subset(net, x, y, StructuredLoss(_td_mse))
        assert verdict.status == "pass", (seed, verdict.value)
