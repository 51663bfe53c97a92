"""A pre-LN residual MLP (each block ``x + fc2(gelu(fc1(ln(x))))``, activations called as functions): each branch's
last layer outputs less than its first, by design of the default init, but its output is added to the stream, which
carries the scale. The variance-propagation check multiplied those per-branch ratios over six blocks (x0.0017) and
failed the healthy model advising Xavier init; the steps into and out of a layer whose output ends a residual branch
are not read. A residual net whose branches hold a deep stack of tiny-init layers still fails: the signal dies inside
each branch."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor import preflight as pf


class PreLNBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.ln, self.fc1, self.fc2 = nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        return x + self.fc2(F.gelu(self.fc1(self.ln(x))))


class TinyBranchBlock(nn.Module):
    """A residual block whose branch is four layers initialized at std 0.01: the signal vanishes inside it."""

    def __init__(self, d):
        super().__init__()
        self.fcs = nn.ModuleList(nn.Linear(d, d) for _ in range(4))
        for fc in self.fcs:
            nn.init.normal_(fc.weight, std=0.01)
            nn.init.zeros_(fc.bias)

    def forward(self, x):
        h = x
        for fc in self.fcs[:-1]:
            h = F.relu(fc(h))
        return x + self.fcs[-1](h)


class ResidualMLP(nn.Module):
    def __init__(self, block, d=64, depth=6):
        super().__init__()
        self.inp = nn.Linear(40, d)
        self.blocks = nn.ModuleList(block(d) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 10))

    def forward(self, x):
        h = self.inp(x)
        for b in self.blocks:
            h = b(h)
        return self.out(h)


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(128, 40, generator=g), torch.randint(0, 10, (128,), generator=g)


def test_a_pre_ln_residual_mlp_is_not_read_as_vanishing():
    torch.manual_seed(0)
    x, y = _data()
    v = pf.variance_propagation(ResidualMLP(PreLNBlock), x, y, F.cross_entropy)
    assert v.status == "pass", v
    assert "blocks.0.fc2" in v.value and "residual branch" in v.value, v


def test_tiny_init_layers_inside_residual_branches_still_fail():
    torch.manual_seed(0)
    x, y = _data()
    v = pf.variance_propagation(ResidualMLP(TinyBranchBlock, depth=3), x, y, F.cross_entropy)
    assert v.status == "fail" and "vanish" in v.advice, v


class EulerNet(nn.Module):
    """Euler steps h + dt * f(h) with one shared f: the stream h gets every step's gradient through the skips, the
    branch a dt-scaled share; the step from the stream into the branch is not read either."""

    def __init__(self, steps=8):
        super().__init__()
        self.steps = steps
        self.inp = nn.Linear(40, 64)
        self.f = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 64))
        self.out = nn.Linear(64, 10)

    def forward(self, x):
        h = self.inp(x)
        for _ in range(self.steps):
            h = h + self.f(h) / self.steps
        return self.out(h)


def test_the_stream_a_shared_branch_starts_from_is_not_compared_with_the_branch():
    torch.manual_seed(0)
    x, y = _data()
    v = pf.variance_propagation(EulerNet(), x, y, F.cross_entropy)
    assert v.status == "pass", v
    assert "inp, f.2" in v.value, v
