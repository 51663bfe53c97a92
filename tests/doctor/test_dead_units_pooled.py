"""Dead ReLU units read over every forward of the observed step. A meta-learner (first-order MAML, Finn et al.
2017) runs its network on many small tasks per step, each on a few points of a 1-D input: a unit that fires on an
interval is off for all of one task's points, so one forward alone reads most units as dead. A unit is dead only
when it is off for everything the step fed it; a layer whose biases keep it off everywhere is still named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from trainwell import doctor
from trainwell.doctor.activation_statistics import activation_stats


def _ramp_net(bias_shift: float) -> nn.Sequential:
    """40 ReLU units, unit i firing for x > c_i with thresholds spread over [-5, 5): each sees an interval."""
    model = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 1))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.copy_(-torch.linspace(-5, 5, 41)[:40] + bias_shift)
    return model


def _meta_step_report(bias_shift: float):
    torch.manual_seed(0)
    model = _ramp_net(bias_shift)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    with doctor.watch(model, opt, every=2) as w:
        for _ in range(4):
            # 10 tasks of 10 points each; the step's last task lies in [-5, -4], where one unit fires
            xs = torch.linspace(5, -5, 100).reshape(10, 10, 1)
            loss = 0.0
            for xt in xs:
                params = dict(model.named_parameters())
                g = torch.autograd.grad(F.mse_loss(functional_call(model, params, (xt,)), xt.sin()),
                                        list(params.values()))
                fast = {n: p - 1e-3 * gi.detach() for (n, p), gi in zip(params.items(), g, strict=True)}
                loss = loss + F.mse_loss(functional_call(model, fast, (xt,)), xt.sin())
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    return w.report()


@pytest.mark.slow  # ~1 s: 4 steps of 20 forwards each
def test_a_meta_learner_s_small_tasks_are_pooled_and_a_layer_off_everywhere_is_still_named():
    healthy = _meta_step_report(0.0)
    assert not [v for v in healthy if v.check == "monitor: dead ReLUs" and v.status in ("warn", "fail")], healthy
    off = _meta_step_report(-20.0)["monitor: dead ReLUs"]
    assert off.status == "warn" and "100%" in off.value, off


def test_peaks_pool_over_forwards_against_one_count_over_the_concatenated_rows():
    g = torch.Generator().manual_seed(0)
    a, b = torch.relu(torch.randn(5, 12, generator=g) - 1.0), torch.relu(torch.randn(6, 12, generator=g) - 1.0)
    first = activation_stats(nn.ReLU(), a)
    assert "dead" not in first  # 5 rows: too few to call a unit dead
    pooled = activation_stats(nn.ReLU(), b, earlier=first["_peaks"])
    whole = torch.cat([a, b])
    assert pooled["dead"] == int((whole.amax(0) <= 0).sum()) / 12
    assert pooled["_peaks"][1] == 11
