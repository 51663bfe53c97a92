"""A target normalizer fitted on each batch, ``yb = (yb - yb.mean()) / yb.std()`` inside the loop: every batch's
targets are made relative to that batch. The watch names it; targets standardized once by the training set's
statistics pass, and so does a full-batch loop on globally standardized targets (the same set every step)."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: targets"


def _train(how: str):
    """The user's regression loop: 12 steps; the targets standardized "per_batch", "once", or "full_batch"."""
    torch.manual_seed(0)
    x = torch.randn(192, 4)
    y = 50 + 10 * (x[:, 0] - x[:, 1])
    y = (y - y.mean()) / y.std() if how != "per_batch" else y  # the training set's statistics, computed once
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    seen = []
    with doctor.watch(model, opt, every=2) as w:
        for step in range(12):
            rows = slice(None) if how == "full_batch" else slice(16 * step, 16 * step + 16)
            xb, yb = x[rows], y[rows]
            if how == "per_batch":
                yb = (yb - yb.mean()) / yb.std()
            seen.append(yb)
            loss = F.mse_loss(model(xb).squeeze(1), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yb)
    return [v for v in w.report().verdicts if v.check == NAME and v.status != "pass"], seen


def test_targets_standardized_on_each_batch_are_named():
    verdicts, seen = _train("per_batch")
    assert all(abs(float(t.mean())) < 1e-6 and abs(float(t.std()) - 1) < 1e-5 for t in seen)  # the oracle
    assert verdicts and verdicts[0].status == "warn" and "standardized by each batch" in verdicts[0].value


def test_targets_standardized_once_pass_in_batches_and_full_batch():
    for how in ("once", "full_batch"):
        verdicts, _ = _train(how)
        assert not verdicts, how
