"""A loop with two optimizers whose second one's ``zero_grad()`` is never called: a backbone and a head trained by
optimizers of their own, and a GAN's discriminator. That optimizer's ``.grad`` sums every step's gradient; the
watch reads each optimizer given to it at its own step. The twins call both ``zero_grad()``s."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

NAME = "loop: gradients at optimizer.step()"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        return self.head(self.backbone(x))


def _two_parts(zero_head: bool):
    torch.manual_seed(0)
    x = torch.randn(512, 16)
    y = x[:, :4].argmax(1)
    model = Net()
    opt_body = torch.optim.SGD(model.backbone.parameters(), lr=0.05, momentum=0.9)
    opt_head = torch.optim.Adam(model.head.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    with doctor.watch(model, [opt_body, opt_head], every=5) as w:
        for _ in range(2):
            for xb, yb in loader:
                opt_body.zero_grad()
                if zero_head:
                    opt_head.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt_body.step()
                opt_head.step()
                w.step(loss, y=yb)
    return w.report()[NAME]


class GAN(nn.Module):
    def __init__(self):
        super().__init__()
        self.g = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
        self.d = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))

    def forward(self, z):
        return self.d(self.g(z))


def _gan(zero_d: bool):
    torch.manual_seed(0)
    gan = GAN()
    opt_g = torch.optim.Adam(gan.g.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(gan.d.parameters(), lr=1e-3, betas=(0.5, 0.999))
    ones, zeros = torch.ones(64, 1), torch.zeros(64, 1)
    with doctor.watch(gan, [opt_g, opt_d], every=5) as w:
        for _ in range(30):
            real = torch.randn(64, 2) * 0.5 + torch.tensor([2.0, -1.0])
            fake = gan.g(torch.randn(64, 8))
            if zero_d:
                opt_d.zero_grad()
            d_loss = F.binary_cross_entropy_with_logits(gan.d(real), ones) + \
                F.binary_cross_entropy_with_logits(gan.d(fake.detach()), zeros)
            d_loss.backward()
            opt_d.step()
            opt_g.zero_grad()
            g_loss = F.binary_cross_entropy_with_logits(gan.d(fake), ones)
            g_loss.backward()
            opt_g.step()
            w.step(g_loss)
    return w.report()[NAME]


@pytest.mark.slow
def test_a_head_optimizer_never_zeroed_is_named_and_its_twin_passes():
    bug = _two_parts(zero_head=False)
    assert bug.status == "fail" and "optimizer 2 of 2" in bug.value and "zero_grad()" in bug.advice
    assert _two_parts(zero_head=True).status == "pass"


@pytest.mark.slow
def test_a_discriminator_never_zeroed_is_named_and_its_twin_passes():
    bug = _gan(zero_d=False)
    assert bug.status == "fail" and "optimizer 2 of 2" in bug.value and "earlier steps" in bug.value
    assert _gan(zero_d=True).status == "pass"
