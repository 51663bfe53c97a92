"""An LR range test written by hand (the rate swept from 1e-4 up to 1e8 on the model and optimizer about to be trained)
whose weights are not restored: the sweep diverges and training starts from NaN weights. The watch around the
training loop names the weights, not the data; the same range test with the weights restored passes."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.nonfinite_weights import nonfinite_start

NAME = "loop: weights at start"


def _train(restore: bool):
    torch.manual_seed(0)
    x, y = torch.randn(128, 8), torch.randint(0, 3, (128,))
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    kept = copy.deepcopy(model.state_dict())
    for s in range(40):  # the range test
        for group in opt.param_groups:
            group["lr"] = 1e-4 * 1e12 ** (s / 39)
        rows = torch.randint(0, 128, (32,))
        opt.zero_grad()
        F.cross_entropy(model(x[rows]), y[rows]).backward()
        opt.step()
    for group in opt.param_groups:
        group["lr"] = 0.1
    if restore:
        model.load_state_dict(kept)
        opt.state.clear()
    broken = not all(torch.isfinite(p).all() for p in model.parameters())
    with doctor.watch(model, opt, every=2) as w:
        for step in range(8):
            xb, yb = x[16 * step : 16 * step + 16], y[16 * step : 16 * step + 16]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yb)
    return [v for v in w.report().verdicts if v.check == NAME], broken


def test_weights_left_nan_by_a_range_test_are_named():
    verdicts, broken = _train(False)
    assert broken  # the oracle: torch's own weights are not finite when the loop begins
    assert verdicts and verdicts[0].status == "fail" and "held NaN or Inf before the loop's first step" in \
        verdicts[0].value and "lr_find" in verdicts[0].advice


def test_a_restored_range_test_passes():
    verdicts, broken = _train(True)
    assert not broken and not verdicts


def test_the_names_shown_are_capped():
    verdict = nonfinite_start([f"layer{i}.weight" for i in range(5)], 10)
    assert "5 of 10" in verdict.value and "and 2 more" in verdict.value
    assert nonfinite_start([], 10) is None
