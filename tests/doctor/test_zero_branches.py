"""Weights whose identical rows end a branch added to another path (LoRA's zero ``B``, a zero-initialized last
layer of a residual branch) are not symmetric units; a zero hidden layer feeding an activation still is."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.activations import symmetry


class LoRALinear(nn.Module):
    """A frozen base layer plus a trainable low-rank update B @ A, B zero at init (Hu et al. 2021)."""

    def __init__(self, base: nn.Linear, r: int = 4, alpha: float = 8.0, zero_a: bool = False):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.A = nn.Parameter(torch.zeros(r, base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))
        if not zero_a:
            nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.scale = alpha / r

    def forward(self, x):
        return self.base(x) + (x @ self.A.T @ self.B.T) * self.scale


class Adapted(nn.Module):
    def __init__(self, zero_a=False):
        super().__init__()
        torch.manual_seed(0)
        self.l1 = LoRALinear(nn.Linear(16, 64), zero_a=zero_a)
        self.l2 = LoRALinear(nn.Linear(64, 4), zero_a=zero_a)

    def forward(self, x):
        return self.l2(F.relu(self.l1(x)))


def _data(n=256):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 16, generator=g)
    return x, (x[:, :4] + x[:, 4:8]).argmax(1)


def test_lora_adapters_with_a_zero_b_pass_check_and_a_zero_a_is_named():
    x, y = _data()
    model = Adapted()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    report = doctor.check(model, x, y, nn.CrossEntropyLoss(), optimizer=opt)
    assert report["symmetry"].status == "pass" and not report.failed
    broken = symmetry(Adapted(zero_a=True), x)
    assert broken.status == "fail" and broken.value == "identical units in l1.A, l2.A"


class ResidualMLP(nn.Module):
    def __init__(self, zero="last"):
        super().__init__()
        torch.manual_seed(0)
        self.inp = nn.Linear(8, 32)
        self.fc1, self.fc2 = nn.Linear(32, 32), nn.Linear(32, 32)
        self.out = nn.Linear(32, 3)
        nn.init.zeros_(self.fc2.weight if zero == "last" else self.fc1.weight)

    def forward(self, x):
        h = F.relu(self.inp(x))
        h = h + self.fc2(F.relu(self.fc1(h)))  # a residual block
        return self.out(h)


@pytest.mark.parametrize("zero, status", [("last", "pass"), ("first", "fail")])
def test_a_zero_initialized_residual_branch_end_is_not_symmetric_but_its_hidden_layer_is(zero, status):
    x = torch.randn(64, 8)
    verdict = symmetry(ResidualMLP(zero), x)
    assert verdict.status == status
    if status == "fail":
        assert verdict.value == "identical units in fc1.weight"
