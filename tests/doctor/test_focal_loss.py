"""A user's focal loss (Lin et al. 2017: -alpha_y (1 - p_y)^gamma log p_y, gamma = 2) on imbalanced labels. Its
value on uniform logits is not ln C, and it moves further from that value than cross-entropy does for the same
small departures from uniform (more so when one class dominates: the departures no longer cancel), so the initial
loss is judged with plain cross-entropy on the same outputs; scores far too large at init are still named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.initial_loss import initial_loss

FEATURES = 8


class FocalLoss(nn.Module):
    """Focal loss written from the paper, with optional class weights alpha."""

    def __init__(self, gamma=2.0, alpha=None):
        super().__init__()
        self.gamma, self.alpha = gamma, alpha

    def forward(self, logits, target):
        ce = F.cross_entropy(logits, target, reduction="none")
        pt = torch.exp(-ce)
        loss = (1 - pt) ** self.gamma * ce
        if self.alpha is not None:
            loss = self.alpha.to(logits)[target] * loss
        return loss.mean()


class FocalCrossEntropy(nn.CrossEntropyLoss):
    """Focal loss as a subclass of torch's cross-entropy (its ``weight`` as alpha)."""

    def __init__(self, gamma=2.0, weight=None):
        super().__init__(weight=weight, reduction="none")
        self.gamma = gamma

    def forward(self, input, target):
        ce = super().forward(input, target)
        pt = torch.exp(-F.cross_entropy(input, target, reduction="none"))
        return ((1 - pt) ** self.gamma * ce).mean()


PRIORS = {"binary 90/10": [0.9, 0.1], "5 classes, one at 60%": [0.6, 0.1, 0.1, 0.1, 0.1]}


def _alpha(prior):
    inverse = 1.0 / torch.tensor(prior)
    return inverse / inverse.sum()


LOSSES = {"module": lambda prior: FocalLoss(), "module, alpha": lambda prior: FocalLoss(alpha=_alpha(prior)),
          "CrossEntropyLoss subclass": lambda prior: FocalCrossEntropy(),
          "CrossEntropyLoss subclass, weight": lambda prior: FocalCrossEntropy(weight=_alpha(prior))}


def _data(prior, n=512, seed=0):
    """Standardized features of Gaussian class clusters, labels drawn with the given class prior."""
    g = torch.Generator().manual_seed(seed)
    y = torch.multinomial(torch.tensor(prior), n, replacement=True, generator=g)
    centers = 2.0 * torch.randn(len(prior), FEATURES, generator=torch.Generator().manual_seed(1))
    x = centers[y] + torch.randn(n, FEATURES, generator=g)
    return (x - x.mean(0)) / x.std(0), y


def _model(classes, seed, scale=1.0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(FEATURES, 64), nn.ReLU(), nn.Linear(64, classes))
    with torch.no_grad():
        model[2].weight.mul_(scale)
        model[2].bias.mul_(scale)
    return model


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("prior", PRIORS)
def test_a_focal_loss_passes_the_initial_loss_wherever_cross_entropy_does_on_the_same_model(prior, loss):
    passed = 0
    for seed in range(8):
        x, y = _data(PRIORS[prior], seed=seed)
        model = _model(len(PRIORS[prior]), seed)
        if initial_loss(model, x, y, nn.CrossEntropyLoss()).status != "pass":
            continue  # cross-entropy itself finds these outputs far from uniform
        passed += 1
        verdict = initial_loss(model, x, y, LOSSES[loss](PRIORS[prior]))
        assert verdict.status == "pass", (seed, verdict.value, verdict.expected)
    assert passed >= 5


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("prior", PRIORS)
def test_a_focal_loss_on_scores_30x_too_large_at_init_is_still_named(prior, loss):
    x, y = _data(PRIORS[prior])
    verdict = initial_loss(_model(len(PRIORS[prior]), 0, scale=30.0), x, y, LOSSES[loss](PRIORS[prior]))
    assert verdict.status in ("warn", "fail") and "not near-uniform" in verdict.advice, verdict.value


def test_a_healthy_focal_loss_with_class_weights_on_90_10_labels_gets_no_warning():
    x, y = _data(PRIORS["binary 90/10"])
    model = _model(2, 0)
    loss_fn = FocalCrossEntropy(weight=_alpha(PRIORS["binary 90/10"]))
    report = doctor.check(model, x, y, loss_fn, optimizer=torch.optim.Adam(model.parameters(), 1e-3))
    assert [(v.check, v.value) for v in report.verdicts if v.status in ("warn", "fail")] == []
