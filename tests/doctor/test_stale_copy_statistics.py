"""An EMA of a BatchNorm net's weights written by hand over ``model.parameters()``: the copy's running statistics
stay at their initial mean 0 and variance 1, so the EMA, evaluated, normalizes with those. Watch names the copy the
loop holds; an EMA that copies the buffers too, and a snapshot of the initial weights, pass."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.stale_copy_statistics import NAME


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 32)
        self.bn = nn.BatchNorm1d(32)
        self.out = nn.Linear(32, 3)

    def forward(self, x):
        return self.out(F.relu(self.bn(self.fc(x))))


def _data(n=128):
    g = torch.Generator().manual_seed(0)
    centers = 2.0 * torch.randn(3, 8, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return 5 + 3 * (centers[y] + torch.randn(n, 8, generator=g)), y


def _train(kept: str):
    """The user's loop: 8 steps, an EMA copy updated after each ("params": its parameters only; "buffers": its
    buffers copied too; "initial": a copy of the initial weights never updated), validated at the end."""
    torch.manual_seed(0)
    x, y = _data()
    model = Net()
    ema = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with doctor.watch(model, opt, every=2) as w:
        for step in range(8):
            xb, yb = x[16 * step : 16 * step + 16], y[16 * step : 16 * step + 16]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yb)
            with torch.no_grad():
                if kept != "initial":
                    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
                        e.mul_(0.5).add_(p, alpha=0.5)
                if kept == "buffers":
                    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
                        e.copy_(b)
        ema.eval()
        with torch.no_grad():
            w.validate(float(F.cross_entropy(ema(x), y)))
        report = w.report()
    return next((v for v in report.verdicts if v.check == NAME), None), ema


def test_an_ema_of_the_parameters_alone_is_named():
    verdict, ema = _train("params")
    assert int(ema.bn.num_batches_tracked) == 0 and bool((ema.bn.running_var == 1).all())  # the oracle
    assert verdict is not None and verdict.status == "warn"
    assert "1 normalization layer whose" in verdict.value and "counted 8 batches" in verdict.value
    assert "ema.buffers()" in verdict.advice and "use_buffers=True" in verdict.advice


@pytest.mark.parametrize("kept", ["buffers", "initial"])
def test_an_ema_with_its_buffers_and_a_snapshot_of_the_start_pass(kept):
    verdict, _ = _train(kept)
    assert verdict is None


def test_torchs_averaged_model_keeps_the_buffers_and_passes():
    # AveragedModel(use_buffers=False) copies the model's buffers at each update_parameters (torch's own code)
    torch.manual_seed(0)
    x, y = _data()
    model = Net()
    ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.9))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with doctor.watch(model, opt, every=2) as w:
        for step in range(8):
            xb, yb = x[16 * step : 16 * step + 16], y[16 * step : 16 * step + 16]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yb)
            ema.update_parameters(model)
        ema.eval()
        with torch.no_grad():
            w.validate(float(F.cross_entropy(ema(x), y)))
        report = w.report()
    assert int(ema.module.bn.num_batches_tracked) == 8  # the oracle: the copy's statistics followed the model's
    assert not [v for v in report.verdicts if v.check == NAME]
