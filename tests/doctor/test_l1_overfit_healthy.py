"""A super-resolution net trained with a per-pixel L1 loss (a residual over bilinear upsampling, PixelShuffle at the
end) memorizes 20 examples, but an absolute error's gradient has one size however close the outputs are: Adam at a
fixed rate circles the fit at a distance set by the rate. The overfit check trains such a loss on, at a third of
the rate per stretch, while it still falls, instead of failing a healthy model after its first 300 steps. A body
that never reads the input still fails."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.overfit import overfit_tiny_subset


class SR(nn.Module):
    def __init__(self, blind=False):
        super().__init__()
        self.blind = blind
        self.body = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(32, 4, 3, padding=1), nn.PixelShuffle(2))

    def forward(self, lr):
        up = F.interpolate(lr, scale_factor=2, mode="bilinear", align_corners=False)
        return up + self.body(torch.zeros_like(lr) if self.blind else lr)  # the bug: the body sees no image


def _images(n=128):
    g = torch.Generator().manual_seed(0)
    xs = torch.linspace(0, 1, 16)
    fx = torch.rand(n, 1, 1, generator=g) * 6 + 1
    fy = torch.rand(n, 1, 1, generator=g) * 6 + 1
    hr = (torch.sin(fx * 6.28 * xs[None, :, None]) * torch.cos(fy * 6.28 * xs[None, None, :]))[:, None]
    return F.avg_pool2d(hr, 2), hr


@pytest.mark.slow
def test_a_per_pixel_l1_super_resolution_net_memorizes_20_images():
    lr, hr = _images()
    torch.manual_seed(0)
    verdict = overfit_tiny_subset(SR(), lr, hr, nn.L1Loss())
    assert verdict.status == "pass", verdict


@pytest.mark.slow
def test_a_body_that_never_reads_the_image_still_fails():
    lr, hr = _images()
    torch.manual_seed(0)
    verdict = overfit_tiny_subset(SR(blind=True), lr, hr, nn.L1Loss())
    assert verdict.status == "fail", verdict
