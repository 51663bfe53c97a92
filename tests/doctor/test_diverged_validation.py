"""A run that diverges (a learning rate far too high: 1000) gives a validation loss that is not finite because the
training loss is not either: the overfitting verdict names the learning-rate verdict as its cause instead of
failing on its own, so the report reads the rate first. Healthy twin: the same loop at a working rate."""

import math

import torch
from torch import nn

from trainwell import doctor
from trainwell.doctor.loop_deferral import defer_diverged_validation
from trainwell.doctor.verdict import Verdict

RATE = "learning rate (loss curve)"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        return self.head(self.body(x))


def _run(lr: float):
    g = torch.Generator().manual_seed(0)
    centers = 2.5 * torch.randn(4, 8, generator=g)
    y = torch.randint(0, 4, (320,), generator=g)
    x = centers[y] + torch.randn(320, 8, generator=g)
    xv, yv, x, y = x[256:], y[256:], x[:256], y[:256]
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for _epoch in range(3):
            model.train()
            perm = torch.randperm(256)
            for i in range(0, 256, 32):
                idx = perm[i:i + 32]
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                loss.backward()
                opt.step()
                w.step(loss, y=y[idx])
            model.eval()
            with torch.no_grad():
                w.validate(nn.functional.cross_entropy(model(xv), yv).item())
    return w.report()


def test_a_diverged_runs_validation_names_the_learning_rate():
    report = _run(lr=1000.0)  # NaN within a few steps
    found = {v.check: v for v in report.verdicts}
    assert found[RATE].status == "fail"
    assert found["overfitting"].status == "info"
    assert found["overfitting"].value.endswith(f"(explained by '{RATE}')")
    assert report.likely_cause.check == RATE


def test_the_same_loop_at_a_working_rate_has_a_finite_validation():
    found = {v.check: v for v in _run(lr=0.05).verdicts}
    assert found["overfitting"].status != "fail" and "explained by" not in str(found["overfitting"].value)
    assert found[RATE].status not in ("warn", "fail")


def test_a_rate_verdict_deferred_to_a_loop_cause_passes_that_cause_on():
    rate = Verdict(RATE, "info", "too high: loss became inf at step 6 (explained by 'loop: gradients at "
                   "optimizer.step()')", "a steady decrease", "fix 'loop: gradients at optimizer.step()' first")
    diverged = Verdict("overfitting", "fail", "validation loss not finite (NaN at validation 1; 3 of 3 not finite), "
                       "nor is the training loss", "a finite validation loss", "training diverged first")
    out = defer_diverged_validation([rate, diverged])[1]
    assert out.status == "info" and "explained by 'loop: gradients at optimizer.step()'" in out.value


def test_a_validation_not_finite_alone_is_left_to_fail():
    rate = Verdict(RATE, "pass", "steady decrease", "a steady decrease")
    broken = Verdict("overfitting", "fail", f"validation loss not finite (NaN at validation 1; {math.inf})",
                     "a finite validation loss", "the model or the evaluation is broken")
    assert defer_diverged_validation([rate, broken]) == [rate, broken]
