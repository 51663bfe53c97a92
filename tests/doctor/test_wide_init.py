"""``weights_init`` with ``nn.init.normal_(m.weight)``: std 1 whatever the fan-in, each 64-input layer multiplies
the activations' scale by about 8. The watch names it (``loop: weight init``); He's init passes, and so does an
``nn.Embedding`` left at torch's N(0, 1) (its rows are looked up, not summed)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: weight init"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(16, 64)  # torch's own init: N(0, 1)
        self.layers = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))

    def forward(self, ids):
        return self.layers(self.emb(ids).mean(1))


@pytest.mark.parametrize("init", ["normal", "kaiming"])
def test_weights_too_wide_for_their_fan_in_are_named(init):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 16, (512, 6), generator=g)
    y = ids[:, 0] % 4
    torch.manual_seed(0)
    model = Net()
    for m in model.layers:
        if isinstance(m, nn.Linear):
            if init == "normal":
                nn.init.normal_(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with doctor.watch(model, opt, every=5) as watch:
        for i in range(0, 512, 32):
            opt.zero_grad()
            loss = F.cross_entropy(model(ids[i : i + 32]), y[i : i + 32])
            loss.backward()
            opt.step()
            watch.step(loss, y=y[i : i + 32])
    named = [v for v in watch.report().verdicts if v.check == NAME and v.status == "warn"]
    if init == "normal":
        assert len(named) == 1 and "far too wide" in named[0].value and "'layers.2'" in named[0].value
        assert "emb" not in named[0].value
    else:
        assert not named
