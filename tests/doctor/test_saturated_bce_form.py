"""A one-vs-rest binary cross-entropy on one-hot rows that fits its batch (logits from -20 to +12) sends a gradient
near 0 that a double softmax's fit absorbed with per-row weights spread over 1e5: a healthy loop was failed as
"cross-entropy applied to probabilities". A real double softmax, with one weight per row, is still read."""

import pytest
import torch
import torch.nn.functional as F

from trainwell.doctor.loss_form import read_form


def _fitted_logits(seed: int, low: float, high: float, label_low: float, label_high: float, classes: int = 4):
    """Logits of a one-vs-rest classifier that fits its batch: the label's in [label_low, label_high], the others in
    [low, high]."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (32,), generator=g)
    z = low + (high - low) * torch.rand(32, classes, generator=g)
    z[torch.arange(32), labels] = label_low + (label_high - label_low) * torch.rand(32, generator=g)
    return z.requires_grad_(), labels


@pytest.mark.parametrize("logits", [(-25, -6, 6, 8), (-20, -4, 4, 12), (-15, -6, 3, 8), (-8, -6, 6, 8)])
def test_a_fitted_one_vs_rest_bce_is_not_a_double_softmax(logits):
    forms = []
    for seed in range(5):
        z, labels = _fitted_logits(seed, *logits)
        F.binary_cross_entropy_with_logits(z, F.one_hot(labels, 4).float()).backward()
        forms.append(read_form(z.detach(), z.grad)["form"])
    assert "cross_entropy_on_probabilities" not in forms


@pytest.mark.parametrize("scale", [0.1, 1.0, 3.0, 6.0])
@pytest.mark.parametrize("class_weights", [False, True])
def test_a_double_softmax_is_still_read(scale, class_weights):
    g = torch.Generator().manual_seed(0)
    z = (scale * torch.randn(32, 4, generator=g)).requires_grad_()
    labels = torch.randint(0, 4, (32,), generator=g)
    weight = 1 + 9 * torch.rand(4, generator=g) if class_weights else None
    F.cross_entropy(z.softmax(1), labels, weight=weight).backward()
    assert read_form(z.detach(), z.grad)["form"] == "cross_entropy_on_probabilities"
