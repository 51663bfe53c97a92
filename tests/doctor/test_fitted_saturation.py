"""A tanh layer that the fit drives to its bounds (a hypernetwork's generated weights that the task wants at +-1) is
not a layer saturated by its init: its warning is information, while a layer saturated from the first snapshot
still warns."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.fitted_saturation import fitted_bounds


class HyperNet(nn.Module):
    """Each task's linear filter generated from the task's embedding (Ha et al. 2017), bounded by tanh."""

    def __init__(self, tasks=4, d=16, scale=1.0):
        super().__init__()
        self.task = nn.Embedding(tasks, 8)
        self.gen = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, d), nn.Tanh())
        with torch.no_grad():
            self.gen[2].weight.mul_(scale)

    def forward(self, x, t):
        return (self.gen(self.task(t)) * x).sum(-1)


def _watched(model, steps, lr=2e-2):
    torch.manual_seed(0)
    signs = torch.randn(4, 16).sign()  # sign filters: the weights that fit lie at tanh's bounds
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with doctor.watch(model, opt, every=25) as w:
        for _ in range(steps):
            t, x = torch.randint(0, 4, (64,)), torch.randn(64, 16)
            y = (signs[t] * x).sum(-1)
            loss = F.mse_loss(model(x, t), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y)
    return w


def test_a_hypernetworks_weights_fitted_at_the_bounds_are_information():
    torch.manual_seed(0)
    w = _watched(HyperNet(), 150)
    first, last = w.monitor.records[0], w.monitor.records[-1]
    assert last["loss"] < first["loss"] / 100  # healthy: the generated filters fit the signs
    assert last["activations"]["gen.3"]["saturated"] > 0.5  # at the bounds, as the task wants
    saturated = w.report()["monitor: saturated units"]
    assert saturated.status == "info" and "saturated as the fit went on" in saturated.value, saturated


def test_a_layer_saturated_from_its_init_still_warns():
    torch.manual_seed(0)
    w = _watched(HyperNet(scale=200.0), 50)
    assert w.monitor.records[0]["activations"]["gen.3"]["saturated"] > 0.5
    assert w.report()["monitor: saturated units"].status == "warn"
    warning = {"kind": "saturated units", "where": "gen.3", "step": 25}
    flat = [{"step": s, "loss": 1.0, "activations": {"gen.3": {"saturated": v}}} for s, v in ((25, 0.1), (50, 0.9))]
    assert fitted_bounds(warning, flat, 0.5) is None  # a loss that did not fall: a rate too high saturates too
