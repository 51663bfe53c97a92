"""Weights initialized to one value (``weights_init`` with ``nn.init.constant_(m.weight, 0.05)``, the biases left
at torch's random draw): every hidden unit starts as the same function of its inputs. The watch's
``loop: symmetry`` names it as the loop began; torch's default init, and a constant output layer alone, pass."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.trained_symmetry import constant_init_verdict, constant_weights

NAME = "loop: symmetry"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(6, 32), nn.Linear(32, 32), nn.Linear(32, 3)

    def forward(self, x):
        return self.out(F.relu(self.fc2(F.relu(self.fc1(x)))))


def _run(init):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    torch.manual_seed(0)
    model = Net()
    model.apply(init)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with doctor.watch(model, opt, every=8) as w:
        for i in range(0, 256, 16):
            opt.zero_grad()
            loss = F.cross_entropy(model(x[i:i + 16]), y[i:i + 16])
            loss.backward()
            opt.step()
            w.step(loss, y=y[i:i + 16])
    return [v for v in w.report().verdicts if v.check == NAME]


def _constant(m):
    if isinstance(m, nn.Linear):
        nn.init.constant_(m.weight, 0.05)


def test_weights_initialized_to_one_value_are_named():
    (v,) = _run(_constant)
    assert v.status == "warn" and "2 weight matrices start with every entry one value" in v.value
    assert "'fc1.weight' (every entry 0.05)" in v.value and "'out.weight'" not in v.value


def test_default_init_passes():
    assert not [v for v in _run(lambda m: None) if v.status != "pass"]


def test_a_constant_output_layer_alone_or_a_zero_start_is_not_read():
    model = Net()
    nn.init.constant_(model.out.weight, 0.1)
    assert constant_init_verdict(constant_weights(model.named_parameters()), model) is None
    nn.init.zeros_(model.fc2.weight)  # a zero start: read after training, if still identical, by trained_symmetry
    ((key, name, value),) = constant_weights(model.named_parameters())
    assert key == id(model.out.weight) and name == "out.weight" and abs(value - 0.1) < 1e-6
