"""AMP's recipe with its step forgotten: ``scaler.scale(loss).backward()`` then ``optimizer.step()`` itself, no
``scaler.step(optimizer)``, no ``scaler.update()``. ``.grad`` keeps GradScaler's starting scale, 65536, at every
step; the watch names the scaler's step, not a hand-written static scale. The recipe as written passes."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


def _train(through_scaler: bool):
    """The user's loop: 8 steps of a small classifier under CPU autocast with a GradScaler."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu")
    ratios = []
    with doctor.watch(model, opt, every=2) as w:
        for step in range(8):
            xb, yb = x[8 * step : 8 * step + 8], y[8 * step : 8 * step + 8]
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(xb)
            loss = F.cross_entropy(out.float(), yb)
            opt.zero_grad()
            scaler.scale(loss).backward()
            plain = torch.autograd.grad(F.cross_entropy(model(xb).float(), yb), model[2].bias)[0]
            ratios.append(float(model[2].bias.grad.norm() / plain.norm()))
            if through_scaler:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            w.step(loss, y=yb)
    return [v for v in w.report().verdicts if v.check == "loop: loss"][0], ratios


def test_optimizer_step_in_place_of_scaler_step_is_named():
    verdict, ratios = _train(False)
    assert 6e4 < ratios[0] < 7e4  # the oracle: .grad is 65536 times backward()'s on the loss itself
    assert verdict.status == "fail" and "scaler.step(optimizer) never called" in verdict.value
    assert "scaler.step(optimizer)" in verdict.advice and "scaler.update()" in verdict.advice


def test_the_scaler_recipe_passes():
    verdict, _ = _train(True)
    assert verdict.status == "pass"
