"""A residual block that adds its input twice (x + body(x) + x) doubles the signal at every block, whatever the
initialization: the doctor names the block (with its weights at 0 it returns 2x its input, where a residual block
returns its input) instead of blaming the init."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


class Block(nn.Module):
    def __init__(self, d, form):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
        self.form = form

    def forward(self, x):
        if self.form == "sum of three":
            return x + self.body(x) + x
        if self.form == "added again":
            out = x + self.body(x)
            return out + x
        return x + self.body(x)


class ResidualNet(nn.Module):
    def __init__(self, form, depth=8, d=32):
        super().__init__()
        self.inp = nn.Linear(20, d)
        self.blocks = nn.ModuleList([Block(d, form) for _ in range(depth)])
        self.out = nn.Linear(d, 4)

    def forward(self, x):
        h = self.inp(x)
        for block in self.blocks:
            h = block(h)
        return self.out(h)


def _data():
    torch.manual_seed(0)
    centres = torch.randn(4, 20) * 2
    y = torch.arange(256) % 4
    return centres[y] + torch.randn(256, 20), y


def _check(form):
    x, y = _data()
    torch.manual_seed(0)
    model = ResidualNet(form)
    return doctor.check(model, x, y, F.cross_entropy, optimizer=torch.optim.Adam(model.parameters(), 1e-3))


@pytest.mark.parametrize("form", ["sum of three", "added again"])
@pytest.mark.slow  # seconds each
def test_check_names_the_block_that_adds_its_input_twice(form):
    report = _check(form)
    v = report["residual blocks"]
    assert v.status == "fail" and "'blocks.0'" in v.value and "2x its input" in v.value, v
    assert "2^8" not in v.value and "256x" in v.value, v  # the oracle: 2 per block over 8 blocks
    assert "added twice" in v.advice, v
    growth = report["variance propagation"]
    assert growth.status in ("warn", "fail") and "initialization is not the cause" in growth.advice, growth
    assert "kaiming" not in growth.advice, growth


@pytest.mark.slow  # seconds each
def test_a_correct_residual_block_is_not_named():
    assert all(v.check != "residual blocks" for v in _check("once").verdicts)


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_watch_names_the_block_that_adds_its_input_twice():
    x, y = _data()
    torch.manual_seed(0)
    model = ResidualNet("sum of three")
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    with doctor.watch(model, opt, every=5) as w:
        for i in range(0, 256, 32):
            loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i:i + 32])
    v = w.report()["loop: residual blocks"]
    assert v.status == "fail" and "'blocks.0'" in v.value and "added twice" in v.advice, v
    assert model.training and all(b.training for b in model.blocks)  # the reading put every mode back
