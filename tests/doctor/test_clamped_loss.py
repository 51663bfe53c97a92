"""``loss = torch.clamp(loss, max=1.0)`` written to tame loss spikes: a cross-entropy over 4 classes starts near
log(4) = 1.39, above the cap, so the clamped loss is exactly 1 and sends no gradient; nothing learns. The watch names
the cap; a clamp the loss stays under, and no clamp, pass."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: loss reaches the outputs"


def _train(cap: float | None):
    """The user's loop: 12 steps of a small classifier, its loss clamped at ``cap`` (None: not clamped)."""
    torch.manual_seed(0)
    x, y = torch.randn(96, 8), torch.randint(0, 4, (96,))
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    start = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with doctor.watch(model, opt, every=2) as w:
        for step in range(12):
            xb, yb = x[8 * step : 8 * step + 8], y[8 * step : 8 * step + 8]
            loss = F.cross_entropy(model(xb), yb)
            if cap is not None:
                loss = torch.clamp(loss, max=cap)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yb)
    moved = any(not torch.equal(a, p) for a, p in zip(start, model.parameters(), strict=True))
    return [v for v in w.report().verdicts if v.check == NAME], moved


def test_a_loss_clamped_below_its_value_is_named_as_the_cap():
    verdicts, moved = _train(1.0)
    assert not moved  # the oracle: torch never moved a weight
    assert verdicts and verdicts[0].status == "fail" and "torch.clamp(loss, max=1)" in verdicts[0].value
    assert "drop the clamp" in verdicts[0].advice


def test_a_clamp_above_the_loss_and_no_clamp_pass():
    for cap in (100.0, None):
        verdicts, moved = _train(cap)
        assert moved and all(v.status == "pass" for v in verdicts)
