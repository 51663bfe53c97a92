"""Fine-tuning that starts with the backbone frozen: ``model.features.requires_grad_(False)``, only the classifier
trains at first. The classifier's weights grow to separate the frozen features at the pace of their scale, so the
overfit check's copy fits 20 examples in more steps than a whole model would; it trains on while the loss keeps
falling. A classifier that reads one feature only (a slicing bug) still cannot fit them and fails."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.overfit import overfit_tiny_subset


class Net(nn.Module):
    def __init__(self, sliced: bool = False):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(),
                                      nn.Linear(64, 8), nn.BatchNorm1d(8), nn.ReLU())
        self.classifier = nn.Linear(1 if sliced else 8, 10)
        self.sliced = sliced

    def forward(self, x):
        h = self.features(x)
        return self.classifier(h[:, :1] if self.sliced else h)  # the bug: one feature of 8


def _verdict(sliced: bool):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 64, generator=g), torch.arange(64) % 10
    torch.manual_seed(0)
    model = Net(sliced)
    model.features.requires_grad_(False)  # the backbone frozen for the first epochs
    return overfit_tiny_subset(model, x, y, F.cross_entropy)


@pytest.mark.slow
def test_a_classifier_on_a_frozen_backbone_fits_a_tiny_subset():
    v = _verdict(sliced=False)
    assert v.status == "pass", v


@pytest.mark.slow
def test_a_classifier_that_reads_one_frozen_feature_still_fails():
    v = _verdict(sliced=True)
    assert v.status == "fail", v
