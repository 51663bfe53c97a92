"""The loss curve under SGD with momentum: the velocity starts at zero, so the step grows to lr / (1 - β) over
its first ~2.3 / (1 - β) updates, an implicit warm-up. A short healthy run that the build-up fills (12 steps of
SGD(lr=0.1, momentum=0.9)) is not told its rate is too low, nor to raise it 3-10x (an effective rate of 3-10,
which diverges on the same loop); a rate too low on a run long enough to read after the build-up still warns, and
the advice names the effective rates that the momentum makes of it."""

import contextlib
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.momentum_curve import (
    buildup_steps,
    heavy_ball,
    momentum_started,
    reread_after_buildup,
    travelled_steps,
)
from trainwell.doctor.rate_numbers import with_rate
from trainwell.doctor.script_watch import ScriptWatch
from trainwell.doctor.verdict import Verdict

CURVE = "learning rate (loss curve)"


def _loop(lr, epochs, seed=2, watched=True):
    """The user's loop: a 6-32-2 MLP on a linear class boundary, batches of 16 by slicing, SGD with momentum 0.9.
    Returns the final full-batch loss and the report (None unwatched)."""
    torch.manual_seed(seed)
    x = torch.randn(96, 6)
    y = (x[:, :2].sum(1) > 0).long()
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    with doctor.watch(model, opt, every=10) if watched else contextlib.nullcontext() as w:
        for _ in range(epochs):
            for i in range(0, 96, 16):
                opt.zero_grad()
                loss = F.cross_entropy(model(x[i:i + 16]), y[i:i + 16])
                loss.backward()
                opt.step()
                if w is not None:
                    w.step(loss, y=y[i:i + 16])
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y)), (w.report() if w is not None else None)


def test_a_short_healthy_momentum_run_is_not_told_to_raise_its_rate():
    # measured over seeds 0-2 on this loop, 60 steps: lr 0.3 ends where 0.1 does, lr 1 (the advice's top) diverges
    for seed in (0, 1, 2):
        _, report = _loop(0.1, 2, seed)
        curve = report[CURVE]
        assert curve.status in ("pass", "info"), curve
        assert "raise the learning rate" not in (curve.advice or ""), curve


def test_the_run_within_the_build_up_says_so():
    slow = Verdict(CURVE, "warn", "too low: slow, near-linear decrease; start 0.74 -> end 0.298", "a bend",
                   "raise the learning rate (by 3-10x)")
    v = reread_after_buildup(slow, 0.9, 12, lambda s: pytest.fail("no steps after the build-up to read"))
    assert v.status == "info" and v.value.startswith("unknown: the run's 12 steps all lie within the momentum's "
                                                     "build-up"), v
    assert "22 steps" in v.value and "start 0.74 -> end 0.298" in v.value and "raise" not in v.advice
    assert reread_after_buildup(slow, None, 12, lambda s: slow) is slow  # no momentum (or built up already)
    assert reread_after_buildup(slow, 0.5, 40, lambda s: slow) is slow  # read again after 4 steps: still too low
    good = Verdict(CURVE, "pass", "good: steady decrease", "a steady decrease")
    v = reread_after_buildup(slow, 0.9, 100, lambda s: good if s == 22 else pytest.fail(s))
    assert v.status == "pass" and v.value.startswith("after the momentum's build-up (steps 23-100"), v
    noisy = Verdict(CURVE, "info", "noisy: a near-linear decrease, but within the batch noise", "-")
    assert reread_after_buildup(slow, 0.9, 100, lambda s: noisy) is slow  # fewer steps, more noise: it stands
    assert reread_after_buildup(slow, 0.9, 200, lambda s: slow) is slow
    assert reread_after_buildup(good, 0.9, 12, lambda s: slow) is good


def test_a_rate_too_low_under_momentum_still_warns_with_its_effective_rates():
    low, report = _loop(3e-4, 10)
    assert low > _loop(3e-3, 10, watched=False)[0] + 0.1  # the oracle: 10x the rate ends far lower
    curve = report[CURVE]
    assert curve.status == "warn" and curve.value.startswith("too low"), curve
    assert "from 0.0003 to 0.0009-0.003; with momentum 0.9 the effective rate lr / (1 - 0.9) goes from 0.003 to " \
           "0.009-0.03" in curve.advice, curve.advice


def test_the_build_up_ends_where_torchs_sgd_step_reaches_90_percent_of_lr_over_1_minus_beta():
    for beta in (0.5, 0.9, 0.99):
        p = nn.Parameter(torch.zeros((), dtype=torch.float64))
        opt = torch.optim.SGD([p], lr=1.0, momentum=beta)
        moves = []
        for _ in range(400):
            before = float(p.detach())
            opt.zero_grad()
            p.backward()  # a constant gradient of 1
            opt.step()
            moves.append(before - float(p.detach()))
        reached = next(t for t, m in enumerate(moves, 1) if m >= 0.9 / (1 - beta))
        assert buildup_steps(beta) == reached, (beta, reached)


def test_which_optimizers_build_up_a_velocity():
    params = [nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))]
    assert heavy_ball([torch.optim.SGD(params, lr=0.1, momentum=0.9)]) == 0.9
    assert heavy_ball([torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True)]) == 0.9
    assert heavy_ball([torch.optim.RMSprop(params, lr=0.1, momentum=0.5)]) == 0.5
    assert heavy_ball([torch.optim.SGD(params, lr=0.1)]) is None
    assert heavy_ball([torch.optim.SGD(params, lr=0.1, momentum=0.9, dampening=0.9)]) is None
    assert heavy_ball([torch.optim.Adam(params, lr=0.1)]) is None  # bias-corrected: no build-up
    assert heavy_ball([torch.optim.SGD([{"params": params[:1], "momentum": 0.9},
                                        {"params": params[1:], "momentum": 0.5}], lr=0.1)]) is None
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    assert not momentum_started([opt])
    sum(p.sum() for p in params).backward()
    opt.step()
    assert momentum_started([opt])


def test_the_advice_names_the_effective_rates_only_under_momentum():
    slow = Verdict(CURVE, "warn", "too low", "", "raise the learning rate (by 3-10x)")
    assert with_rate(slow, [0.1] * 5, [], 0.9).advice == ("raise the learning rate (by 3-10x: from 0.1 to 0.3-1; with "
                                                          "momentum 0.9 the effective rate lr / (1 - 0.9) goes from 1 "
                                                          "to 3-10)")
    assert with_rate(slow, [0.1] * 5, []).advice == "raise the learning rate (by 3-10x: from 0.1 to 0.3-1)"


SCRIPT = """
import torch
from torch import nn

torch.manual_seed(2)
x = torch.randn(96, 6)
y = (x[:, :2].sum(1) > 0).long()
model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
for epoch in range(2):
    for i in range(0, 96, 16):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x[i:i + 16]), y[i:i + 16])
        loss.backward()
        opt.step()
"""


@pytest.mark.slow  # ~2 s: the script run under the command's reader
def test_trainwell_watch_does_not_tell_a_short_momentum_run_to_raise_its_rate(tmp_path):
    path = tmp_path / "short.py"
    path.write_text(textwrap.dedent(SCRIPT))
    runner = ScriptWatch(every=5)
    [report] = runner.run(str(path), [])
    assert runner.error is None, runner.error
    curve = report[CURVE]
    assert curve.status in ("pass", "info") and "raise the learning rate" not in (curve.advice or ""), curve


def test_a_short_momentum_run_is_read_by_the_distance_its_steps_travelled():
    # 30 steps at momentum 0.9: too few after the 22-step build-up (20 needed), 22 by the distance travelled
    low, report = _loop(1e-3, 5, seed=1)
    assert low > _loop(1e-2, 5, seed=1, watched=False)[0] + 0.1  # the oracle: 10x the rate ends far lower
    curve = report[CURVE]
    assert curve.status == "warn", curve
    assert curve.value.startswith("read by the distance its steps travelled (the run's 30 steps lie mostly within "
                                  "the momentum's build-up, momentum 0.9: 22 steps") and "too low" in curve.value, curve
    assert "from 0.001 to 0.003-0.01" in curve.advice, curve.advice


def test_a_run_too_short_to_read_says_how_many_steps_it_needs():
    slow = Verdict(CURVE, "warn", "too low: slow, near-linear decrease; start 0.74 -> end 0.298", "a bend",
                   "raise the learning rate (by 3-10x)")
    noisy = Verdict(CURVE, "info", "noisy: a near-linear decrease, but within the batch noise", "-")
    v = reread_after_buildup(slow, 0.9, 30, lambda s: pytest.fail(s), lambda steps: noisy)
    assert v.status == "info" and "(22 steps) the curve is noisy, which tells no rate" in v.value, v
    assert "it needs 42 steps or more" in v.value, v
    v = reread_after_buildup(slow, 0.9, 12, lambda s: pytest.fail(s), lambda steps: pytest.fail(steps))
    assert "too few steps to read it by the distance they travelled (6, fewer than 10)" in v.value, v
    good = Verdict(CURVE, "pass", "good: steady decrease", "a steady decrease")
    assert reread_after_buildup(slow, 0.9, 30, lambda s: slow, lambda steps: good).status == "pass"
    assert travelled_steps(30, 0.9)[:3] == [0, 3, 5] and len(travelled_steps(30, 0.9)) == 22
