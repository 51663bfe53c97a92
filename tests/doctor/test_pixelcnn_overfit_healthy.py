"""PixelCNN (van den Oord et al. 2016), a user's masked convolutions on binarized 8x8 digits, trained on the BCE of
its per-pixel logits against its own input. Outputs that share a context share a prediction, so where the 20
examples' contexts agree but their pixels do not, the fit's outputs sit at the pixels' frequency and fall on either
side of 0.5: the overfit check holds its accuracy to the pixels whose context settles them, not to the 99% of free
outputs (it read 96% against that as a failure to memorize)."""

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from trainwell.doctor.autoregressive_floor import settled_accuracy
from trainwell.doctor.overfit import overfit_tiny_subset


class MaskedConv2d(nn.Conv2d):
    def __init__(self, mask_type, *args, **kw):
        super().__init__(*args, **kw)
        k = self.kernel_size[0]
        mask = torch.ones_like(self.weight)
        mask[:, :, k // 2, k // 2 + (mask_type == "B"):] = 0
        mask[:, :, k // 2 + 1:] = 0
        self.register_buffer("mask", mask)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding)


def pixelcnn():
    return nn.Sequential(
        MaskedConv2d("A", 1, 32, 5, padding=2), nn.ReLU(),
        MaskedConv2d("B", 32, 32, 3, padding=1), nn.ReLU(),
        MaskedConv2d("B", 32, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 1, 1))


def test_settled_accuracy_counts_the_groups_whose_examples_agree():
    index = torch.tensor([[0, 2], [0, 2], [1, 3], [1, 3]])  # element 0: groups 0, 1; element 1: groups 2, 3
    y = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    assert settled_accuracy(index, y) == pytest.approx(6 / 8)  # group 2 disagrees: its 2 elements are unsettled
    assert settled_accuracy(index, y * 0.5) == 1.0  # not 0/1 targets: nothing to count


@pytest.mark.slow  # ~4 s: the overfit check on a convolutional copy
def test_a_pixelcnn_fitted_near_its_floor_passes_and_a_blinded_one_fails():
    x = (torch.tensor(load_digits().data[:256], dtype=torch.float32).view(-1, 1, 8, 8) / 16.0 > 0.4).float()
    torch.manual_seed(0)
    healthy = overfit_tiny_subset(pixelcnn(), x, x, nn.BCEWithLogitsLoss())
    assert healthy.status == "pass", healthy
    assert "sees only the inputs before it" in str(healthy.value)
    torch.manual_seed(0)
    blind = pixelcnn()
    for m in blind:
        if isinstance(m, MaskedConv2d):
            m.mask.zero_()  # the bug: every tap masked, only biases reach the outputs
    assert overfit_tiny_subset(blind, x, x, nn.BCEWithLogitsLoss()).status == "fail"
