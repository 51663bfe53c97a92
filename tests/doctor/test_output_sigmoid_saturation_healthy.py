"""An autoencoder of binary pixels ending in nn.Sigmoid under BCELoss fits its targets at 0 and 1: its output units
saturate because the reconstruction is confident, which is the goal, not units that stopped learning (BCE on a
sigmoid sends p - y back whatever the saturation). The saturation monitor leaves out the activation that is the
model's output; a hidden Sigmoid driven into saturation is still named."""

import pytest
import torch
from torch import nn

from trainwell import doctor


def _images():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(512, 64)
    for k in range(512):
        start = int(torch.randint(0, 40, (1,), generator=g))
        x[k, start:start + 8 + k % 16] = 1.0  # one bar of ones per row
    return x


def _train(model, x, epochs=6):
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.BCELoss()
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(epochs):
            for i in range(0, len(x), 64):
                xb = x[i:i + 64]
                loss = loss_fn(model(xb), xb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=xb)
    return w


@pytest.fixture(scope="module")
def healthy_watch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 64), nn.Sigmoid())
    return _train(model, _images())


def test_a_sigmoid_ending_a_binary_autoencoder_is_not_called_saturated(healthy_watch):
    assert healthy_watch.losses[-1] < 0.5 * healthy_watch.losses[0]  # it learned to reconstruct
    outputs = [r["activations"]["3"] for r in healthy_watch.monitor.records]
    assert max(a["saturated"] for a in outputs) > 0.5  # its outputs did saturate: confident reconstructions
    assert all(a.get("output") for a in outputs)
    assert "monitor: saturated units" not in healthy_watch.report().checks


def test_a_hidden_sigmoid_driven_into_saturation_is_still_named():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.Sigmoid(), nn.Linear(32, 64), nn.Sigmoid())
    with torch.no_grad():
        model[0].weight.mul_(200)
    w = _train(model, _images(), epochs=2)
    verdict = w.report()["monitor: saturated units"]
    assert verdict.status == "warn", verdict
    assert verdict.value.startswith("'1' (Sigmoid after Linear(64 -> 32)) at step"), verdict
