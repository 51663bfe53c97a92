"""The monitors' rows name a layer by its name and by what it is (layer_labels.layer_label), so a user finds
``net.1`` or ``0.weight`` in the model without counting modules."""

import torch
from torch import nn

from trainwell import doctor


class Classifier(nn.Module):
    def __init__(self, first_scale: float = 1.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 3))
        with torch.no_grad():
            self.net[0].weight.mul_(first_scale)

    def forward(self, x):
        return self.net(x)


def _watched(model, lr, steps=20):
    torch.manual_seed(1)
    x, y = torch.randn(256, 20), torch.randint(0, 3, (256,))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(steps):
            i = torch.randint(0, 256, (32,))
            loss = nn.functional.cross_entropy(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i])
    return {v.check: v for v in w.report()}


def test_a_saturated_layer_is_named_with_what_it_is_and_what_feeds_it():
    torch.manual_seed(0)
    saturated = _watched(Classifier(first_scale=30.0), lr=0.05)["monitor: saturated units"]
    assert saturated.status == "warn"
    assert saturated.value.startswith("'net.1' (Tanh after Linear(20 -> 64)) at step 10: "), saturated


def test_a_parameter_row_names_its_layer():
    torch.manual_seed(0)
    model = Classifier()
    with torch.no_grad():
        model.net[4].bias.fill_(float("nan"))  # every score NaN from the first step: a NaN gradient everywhere
    rows = _watched(model, lr=0.05, steps=12)
    nan = [v for c, v in rows.items() if c.startswith("monitor: non-finite")]
    assert any(v.value.startswith("in layer 'net.4' (Linear(64 -> 3)) at step 10") for v in nan), nan
