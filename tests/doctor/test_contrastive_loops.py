"""doctor.watch on a SimCLR-style loop (NT-Xent over two augmented views of each example, Chen et al. 2020): at a
temperature of 1 the loss levels off high because unit-norm embeddings bound its logits to ±1, which the flat
curve's verdict names (not shuffled data); at 0.1-0.5 a healthy loop gets no warning."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


class Encoder(nn.Module):
    def __init__(self, d=20, h=64, k=16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, k))

    def forward(self, x):
        return F.normalize(self.net(x), dim=-1)


def nt_xent(z1, z2, temperature):
    b = len(z1)
    z = torch.cat([z1, z2])
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)])
    return F.cross_entropy(sim, target)


def _train(temperature, epochs=20):
    torch.manual_seed(0)
    data = torch.randn(2048, 20)
    model = Encoder()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=20) as w:
        for _ in range(epochs):
            for batch in torch.utils.data.DataLoader(data, batch_size=128, shuffle=True):
                views = [batch + 0.3 * torch.randn_like(batch) for _ in range(2)]
                loss = nt_xent(model(views[0]), model(views[1]), temperature)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
    return w


def test_the_temperature_is_read_from_the_loss():
    w = _train(0.5, epochs=1)
    assert w._contrastive.reading is not None
    assert abs(w._contrastive.reading["scale"] - 2.0) < 1e-4  # the oracle: 1/T


@pytest.mark.slow
def test_a_plateau_at_temperature_one_is_named_as_the_temperature():
    w = _train(1.0)
    curve = w.report()["learning rate (loss curve)"]
    assert curve.status == "warn", curve
    assert "temperature" in curve.advice and "shuffled" not in curve.advice, curve
    floor = float(curve.value.split("floor ")[1])
    n = 256  # a lower bound no unit vectors beat: Jensen over the 255 candidates, mean cosine >= -1/255 on average
    assert math.log(n - 1) - (1 + 1 / (n - 1)) - 0.05 <= floor < w.losses[-1], curve


@pytest.mark.parametrize("temperature", [0.1, 0.5])
@pytest.mark.slow  # seconds each
def test_a_healthy_loop_at_a_usual_temperature_is_not_warned(temperature):
    report = _train(temperature)
    bad = [v for v in report.report().verdicts if v.status in ("warn", "fail")]
    assert not bad, bad
