"""A VQ-VAE's decoder (van den Oord et al. 2017) fed a codebook that starts tiny (uniform in +-1/K, as the reference
code draws it): its ReLU units start off, their inputs too small to beat their biases, and come back as the codes
grow towards the encoder's outputs. A layer that revives was never dead (dead units get no gradient and stay so):
its early reading is ``info``, with the last one. A decoder whose biases start at -3 stays dead and is warned."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


class VQAE(nn.Module):
    def __init__(self, bias):
        super().__init__()
        self.enc = nn.Linear(16, 4)
        self.codebook = nn.Parameter(torch.empty(8, 4).uniform_(-1 / 8, 1 / 8))
        self.dec = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 16))
        nn.init.constant_(self.dec[0].bias, bias)

    def forward(self, x):
        z = self.enc(x)
        q = self.codebook[torch.cdist(z, self.codebook).argmin(1)]
        self.vq_loss = F.mse_loss(q, z.detach()) + 0.25 * F.mse_loss(z, q.detach())
        return self.dec(z + (q - z).detach())  # straight-through


def _dead(bias):
    torch.manual_seed(0)
    x = torch.randn(512, 16)
    model = VQAE(bias)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt, every=8) as w:
        for _ in range(10):
            for i in torch.randperm(512).split(32):
                loss = F.mse_loss(model(x[i]), x[i]) + model.vq_loss
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
    return w.report()["monitor: dead ReLUs"]


@pytest.mark.slow  # ~0.8 s for both
def test_units_that_come_back_are_not_warned_as_dead_and_units_that_stay_dead_are():
    revived = _dead(-0.1)
    assert revived.status == "info" and "came back" in revived.value, revived
    assert revived.expected.startswith("at most") and revived.advice.startswith("nothing to do for this layer")
    dead = _dead(-3.0)
    assert dead.status == "warn" and "100%" in dead.value, dead
