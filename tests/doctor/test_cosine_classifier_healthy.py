"""A cosine classifier (CosFace: s * cos(theta) between normalized features and normalized class weights, a margin
m taken off the label's score) starts with scores of std about s / sqrt(d), so its first cross-entropy is above
ln C by design: the initial loss says so (info) instead of failing and asking for a smaller init. A plain Linear
head initialized far too large still fails."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.initial_loss import initial_loss


class CosHead(nn.Module):
    def __init__(self, d, classes, s=16.0):
        super().__init__()
        self.w = nn.Parameter(torch.randn(classes, d) * 0.1)
        self.s = s

    def forward(self, h):
        return self.s * F.normalize(h, dim=1) @ F.normalize(self.w, dim=1).T


class Net(nn.Module):
    def __init__(self, head):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(20, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 32))
        self.head = head

    def forward(self, x):
        return self.head(self.body(x))


def cosface(logits, y, m=0.35, s=16.0):
    return F.cross_entropy(logits - s * m * F.one_hot(y, logits.shape[1]), y)


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(128, 20, generator=g), torch.randint(0, 8, (128,), generator=g)


def test_a_cosine_classifier_starts_above_ln_c_by_design():
    torch.manual_seed(0)
    x, y = _batch()
    for loss in (cosface, F.cross_entropy):
        verdict = initial_loss(Net(CosHead(32, 8)), x, y, loss)
        assert verdict.status == "info", verdict
        assert "cosine classifier" in verdict.advice and "'body.3'" in verdict.advice


def test_a_linear_head_initialized_too_large_still_fails():
    torch.manual_seed(0)
    x, y = _batch()
    head = nn.Linear(32, 8)
    with torch.no_grad():
        head.weight.mul_(30)
    verdict = initial_loss(Net(head), x, y, F.cross_entropy)
    assert verdict.status == "fail", verdict
    assert "cosine" not in verdict.advice.split("such as")[0]
