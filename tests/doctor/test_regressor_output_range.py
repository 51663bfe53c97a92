"""A regressor whose last layer is followed by an activation that cuts its outputs at 0 (a ReLU, Softplus or
Sigmoid), trained with a squared error on targets of both signs (standardized targets, images in [-1, 1]): the
negative targets can never be reached. A linear output on the same targets, or the ReLU on targets that are never
below 0, pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn


def _run(end: nn.Module, targets: str = "standardized"):
    from trainwell import doctor

    torch.manual_seed(0)
    x = torch.randn(1024, 8)
    y = x[:, 0] - 0.5 * x[:, 1] + 0.1 * torch.randn(1024)
    if targets == "absolute":
        y = y.abs()
    elif targets == "noisy_positive":  # a quantity never below 0 on average, measured with noise: 25% below 0
        y = F.relu(x[:, 0]) + 0.3 * torch.randn(1024)
    elif targets == "noise":  # unpredictable, mean 1.3: a few % below 0, fitted by outputs near 1.3
        y = 1.3 + torch.randn(1024)
    else:
        y = (y - y.mean()) / y.std()
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 1), end, nn.Flatten(0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt) as w:
        for _ in range(3):
            perm = torch.randperm(1024)
            for i in range(0, 1024, 64):
                b = perm[i : i + 64]
                opt.zero_grad()
                loss = F.mse_loss(model(x[b]), y[b])
                loss.backward()
                opt.step()
                w.step(loss, y=y[b])
    return [v for v in w.report() if v.status in ("warn", "fail")]


@pytest.mark.parametrize("end", [nn.ReLU(), nn.Softplus(), nn.Sigmoid()], ids=["relu", "softplus", "sigmoid"])
def test_outputs_cut_at_zero_against_negative_targets_fail(end):
    alarms = _run(end)
    assert [(v.check, v.status) for v in alarms] == [("loop: loss input", "fail")], alarms
    assert "never went below 0" in alarms[0].value


def test_a_linear_output_on_the_same_targets_passes():
    assert _run(nn.Identity()) == []


def test_a_relu_output_on_targets_never_below_zero_passes():
    assert [v for v in _run(nn.ReLU(), "absolute") if v.check == "loop: loss input"] == []


@pytest.mark.parametrize(("end", "targets"), [(nn.Identity(), "noise"), (nn.ReLU(), "noisy_positive")],
                         ids=["linear-noise", "relu-noisy-positive"])
def test_outputs_above_zero_where_the_targets_mean_is_pass(end, targets):
    assert [v for v in _run(end, targets) if v.check == "loop: loss input"] == []
