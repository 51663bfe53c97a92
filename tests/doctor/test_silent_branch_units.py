"""A squeeze-and-excitation gate read after a residual block's last BatchNorm, whose scale starts at zero
(``zero_init_residual``, Goyal et al. 2017): the gate's first layer gets the same input, 0, for every example, so
its ReLU units with a negative bias start dead. The dead-unit readings name that zero init, not a bias or init
scale gone wrong; a gate whose bias really is set far negative is still read as before."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn


class SE(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(c, c // 4), nn.Linear(c // 4, c)

    def forward(self, x):
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
        return x * s[:, :, None, None]


class Block(nn.Module):
    def __init__(self, c: int, zero_gamma: bool):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.c2, self.b2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        if zero_gamma:
            nn.init.zeros_(self.b2.weight)  # each block starts as the identity
        self.se = SE(c)

    def forward(self, x):
        h = F.relu(self.b1(self.c1(x)))
        return F.relu(x + self.se(self.b2(self.c2(h))))


class SEResNet(nn.Module):
    def __init__(self, zero_gamma: bool = True):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.Sequential(Block(16, zero_gamma), Block(16, zero_gamma))
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


def _data():
    torch.manual_seed(0)
    return torch.randn(64, 1, 8, 8), torch.randint(0, 4, (64,))


def _dead_units(model):
    x, y = _data()
    from trainwell.doctor.dead_units import dead_units

    return dead_units(model, x)


@pytest.mark.slow  # 0.4-2.5 s on a loaded 2-core box
def test_gate_behind_a_zero_gamma_is_named_as_the_zero_init():
    torch.manual_seed(0)
    model = SEResNet(zero_gamma=True)
    with torch.no_grad():  # the draw that leaves every unit of the first gate with a negative bias
        model.blocks[0].se.fc1.bias.copy_(-model.blocks[0].se.fc1.bias.abs())
    v = _dead_units(model)
    assert v.status == "warn"
    assert "same for every example" in v.value and "blocks.0.b2" in v.advice and "Goyal" in v.advice


@pytest.mark.slow  # 0.4-2.5 s on a loaded 2-core box
def test_gate_with_a_large_negative_bias_is_still_a_dead_layer():
    torch.manual_seed(0)
    model = SEResNet(zero_gamma=False)
    with torch.no_grad():
        model.blocks[0].se.fc1.bias.fill_(-50.0)
    v = _dead_units(model)
    assert v.status == "fail" and "large negative bias" in v.advice


def _monitor_advice(model, site):
    from trainwell.doctor.monitors import Monitor
    from trainwell.train.callbacks import State

    monitor = Monitor(every=5)
    monitor.on_fit_start(State(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    return monitor._dead_advice(site)


@pytest.mark.slow  # 0.4-2.5 s on a loaded 2-core box
def test_watch_names_the_zero_init_for_a_gate_read_after_it():
    torch.manual_seed(0)
    advice = _monitor_advice(SEResNet(zero_gamma=True), "F.relu after blocks.0.se.fc1")
    assert "zero-initialized scale of blocks.0.b2" in advice and "blocks.0.se.fc1.bias" in advice


@pytest.mark.parametrize("zero_gamma, site", [(False, "F.relu after blocks.0.se.fc1"),  # no zero init
                                              (True, "F.relu after blocks.0.b1")])  # inside the branch, before it
def test_watch_keeps_its_advice_for_other_dead_units(zero_gamma, site):
    torch.manual_seed(0)
    assert "lower the learning rate" in _monitor_advice(SEResNet(zero_gamma=zero_gamma), site)
