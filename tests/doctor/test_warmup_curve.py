"""The loss curve read after a learning-rate warm-up: a linear warm-up over half the run makes the whole curve a
slow, near-linear decrease, which is no low rate once the rate at its peak bends the curve; a peak rate that is
too low still reads "too low" after the warm-up."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


def _curve(peak_lr: float, warmup_steps: int):
    """An MLP learning 4 classes from the signs of two of 16 features, AdamW under a linear warm-up."""
    torch.manual_seed(0)
    x = torch.randn(1600, 16)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.AdamW(model.parameters(), lr=peak_lr)
    warmup = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup_steps))
    with doctor.watch(model, opt) as w:
        for _ in range(4):
            perm = torch.randperm(1600)
            for i in range(0, 1600, 64):
                b = perm[i : i + 64]
                opt.zero_grad()
                loss = F.cross_entropy(model(x[b]), y[b])
                loss.backward()
                opt.step()
                warmup.step()
                w.step(loss, y=y[b])
    return next(v for v in w.report() if v.check == "learning rate (loss curve)")


def test_a_warmup_over_half_the_run_is_not_read_as_a_low_rate():
    curve = _curve(3e-3, 50)
    assert curve.status == "pass", curve.value
    assert "after the warm-up (steps 50-100" in curve.value


def test_a_peak_rate_too_low_still_reads_too_low_after_its_warmup():
    curve = _curve(1e-4, 50)
    assert curve.status == "warn" and curve.value.startswith("too low"), curve.value


def test_the_warmup_ends_where_the_rate_first_reaches_its_peak():
    from trainwell.doctor.warmup_curve import warmup_end

    assert warmup_end([0.01 * (i + 1) for i in range(10)] + [0.1] * 30) == 9
    assert warmup_end([0.1] * 40) is None  # no warm-up
    assert warmup_end([0.01 * (i + 1) for i in range(10)] + [0.1] * 5) is None  # too few steps after it
    assert warmup_end([0.01, 0.03, 0.02, 0.04, 0.05, 0.06] + [0.1] * 30) is None  # a rate that fell on the way
