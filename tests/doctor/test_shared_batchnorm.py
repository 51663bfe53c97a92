"""The doctor on a network that defines one BatchNorm module and calls it after two different layers
(``self.bn`` after ``fc1`` and after ``fc2``, both 64 wide, so nothing fails). Its running statistics blend the two
layers' outputs, which eval mode then normalizes with (in the reproducer, validation accuracy 86% against 99.6%
with a BatchNorm per layer). ``batchnorm reuse`` names it; the twins, a BatchNorm per layer, a Siamese encoder
called on two inputs and a block applied twice (one layer's outputs each time), are not named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.inputs import Inputs
from trainwell.doctor.shared_batchnorm import shared_batchnorm


class MLP(nn.Module):
    def __init__(self, shared: bool):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(8, 64), nn.Linear(64, 64), nn.Linear(64, 4)
        self.bn = nn.BatchNorm1d(64)
        self.bn2 = self.bn if shared else nn.BatchNorm1d(64)

    def forward(self, x):
        h = F.relu(self.bn(self.fc1(x)))
        return self.fc3(F.relu(self.bn2(self.fc2(h))))


class Siamese(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 16))

    def forward(self, a, b):
        return (self.enc(a) - self.enc(b)).pow(2).sum(1, keepdim=True)


class Repeated(nn.Module):
    """One residual block (Linear then BatchNorm) applied twice, weights shared on purpose."""

    def __init__(self):
        super().__init__()
        self.inp, self.block, self.out = nn.Linear(8, 32), nn.Sequential(nn.Linear(32, 32), nn.BatchNorm1d(32)), \
            nn.Linear(32, 4)

    def forward(self, x):
        h = self.inp(x)
        for _ in range(2):
            h = h + F.relu(self.block(h))
        return self.out(h)


def test_one_batchnorm_after_two_layers_is_named():
    torch.manual_seed(0)
    v = shared_batchnorm(MLP(shared=True), torch.randn(16, 8))
    assert v is not None and v.status == "warn", v
    assert "'bn'" in v.value and "'fc1', 'fc2'" in v.value and "self.bn1" in v.advice, v


@pytest.mark.parametrize("model,x", [(MLP(shared=False), torch.randn(16, 8)),
                                     (Siamese(), Inputs((torch.randn(16, 8), torch.randn(16, 8)))),
                                     (Repeated(), torch.randn(16, 8))], ids=["own", "siamese", "repeated block"])
def test_one_layers_outputs_per_batchnorm_are_not_named(model, x):
    assert shared_batchnorm(model, x) is None


def test_the_reading_leaves_running_statistics_and_mode_alone():
    torch.manual_seed(0)
    model = MLP(shared=True)
    before = model.bn.running_mean.clone(), model.bn.num_batches_tracked.clone()
    shared_batchnorm(model, torch.randn(16, 8) + 3)
    assert torch.equal(model.bn.running_mean, before[0]) and torch.equal(model.bn.num_batches_tracked, before[1])
    assert model.training


@pytest.mark.slow
def test_doctor_check_names_it_and_not_the_twin():
    torch.manual_seed(0)
    x, y = torch.randn(128, 8), torch.randint(0, 4, (128,))
    named = {shared: [v for v in doctor.check(MLP(shared), x, y, F.cross_entropy) if v.check == "batchnorm reuse"]
             for shared in (True, False)}
    assert named[True] and not named[False], named
