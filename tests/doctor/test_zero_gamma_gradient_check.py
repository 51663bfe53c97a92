"""A ResNet whose last BatchNorm of each residual branch starts at gamma = 0 (Goyal et al. 2017): each branch adds
exactly 0, so ``relu(x + 0)`` sits on its kink wherever the ReLU before it gave exactly 0. The gradient check reads
those coordinates as kinks, not as a wrong backward; a term cut from the graph still fails there."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.gradient_check import gradient_check


class Block(nn.Module):
    """conv-BN-ReLU-conv-BN plus the identity, the branch's last BatchNorm zero-initialized."""

    def __init__(self, c):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.c2, self.b2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        nn.init.zeros_(self.b2.weight)

    def forward(self, x):
        return F.relu(x + self.b2(self.c2(F.relu(self.b1(self.c1(x))))))


class ResNet(nn.Module):
    def __init__(self, c=16, classes=4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.blocks = nn.Sequential(*[Block(c) for _ in range(3)])
        self.head = nn.Linear(c, classes)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


def _quadrant_images(n=64):
    """8 x 8 images whose label is the quadrant that is brighter."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (n,), generator=g)
    x = 0.5 * torch.randn(n, 1, 8, 8, generator=g)
    for i, label in enumerate(y.tolist()):
        r, c = (label // 2) * 4, (label % 2) * 4
        x[i, 0, r:r + 4, c:c + 4] += 1.0
    return x, y


@pytest.mark.slow  # seconds each
def test_zero_initialized_residual_gamma_passes_the_gradient_check():
    torch.manual_seed(0)
    x, y = _quadrant_images()
    model = ResNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    report = doctor.check(model, x, y, F.cross_entropy, optimizer=opt)
    assert report["gradient check (data loss)"].status == "pass", report["gradient check (data loss)"]
    for seed in range(6):  # many coordinates of several initializations: the kinks' jumps cancel on some
        torch.manual_seed(seed)
        verdict = gradient_check(ResNet(), x, y, F.cross_entropy, seed=seed, coords=20)
        assert verdict.status == "pass", (seed, verdict)


class GammaPenalized(ResNet):
    """Also returns a pull of the branch gammas towards 1, taken as a number with ``.item()``: autograd never sees
    it, the loss does."""

    def forward(self, x):
        pull = sum((block.b2.weight - 1).pow(2).sum() for block in self.blocks).item()
        return super().forward(x), pull


@pytest.mark.slow  # seconds each
def test_a_term_cut_from_the_graph_still_fails_on_the_zero_gamma():
    torch.manual_seed(0)
    x, y = _quadrant_images()
    verdict = gradient_check(GammaPenalized(), x, y, lambda out, t: F.cross_entropy(out[0], t) + out[1], coords=8)
    assert verdict.status == "fail" and "b2.weight" in verdict.advice
