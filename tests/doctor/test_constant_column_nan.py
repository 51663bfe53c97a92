"""A constant column (a dead sensor, an always-zero pixel) standardized by (x - mean) / std: 0 / 0 puts NaN in every
row. The watch names the inputs, and the non-finite validation loss reads as following from them; with the std
clamped away from 0 the loop is clean."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(9, 64), nn.ReLU(), nn.Linear(64, 4))

    def forward(self, x):
        return self.net(x)


def _run(clamp: bool):
    torch.manual_seed(0)
    centers = 2.5 * torch.randn(4, 8)
    y = torch.randint(0, 4, (640,))
    x = torch.cat([centers[y] + torch.randn(640, 8), torch.zeros(640, 1)], 1)  # the last column constant
    mu, sd = x[:512].mean(0), x[:512].std(0)
    x = (x - mu) / (sd.clamp_min(1e-8) if clamp else sd)
    model = MLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:512], y[:512]), batch_size=32,
                                         shuffle=True)
    with doctor.watch(model, opt, every=8) as w:
        for _ in range(3):
            model.train()
            for xb, yb in loader:
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            model.eval()
            with torch.no_grad():
                w.validate(F.cross_entropy(model(x[512:]), y[512:]).item())
    return w.report()


@pytest.fixture(scope="module")
def reports():
    return {clamp: _run(clamp) for clamp in (False, True)}


@pytest.mark.slow
def test_nan_inputs_are_the_one_fail_and_explain_the_validation_loss(reports):
    alarms = [v for v in reports[False] if v.status in ("warn", "fail")]
    assert [v.check for v in alarms] == ["loop: inputs"], alarms
    assert "NaN" in alarms[0].value
    overfitting = next(v for v in reports[False] if v.check == "overfitting")
    assert overfitting.status == "info" and "explained by 'loop: inputs'" in overfitting.value


@pytest.mark.slow
def test_a_clamped_std_is_clean(reports):
    assert [v for v in reports[True] if v.status in ("warn", "fail")] == []
