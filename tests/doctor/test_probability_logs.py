"""The doctor on a binary classifier trained with a cross-entropy written out by hand on ``torch.sigmoid(z)``:
``-(y * torch.log(p) + (1 - y) * torch.log(1 - p))``. Once the model is confidently right, sigmoid(z) rounds to 1.0
in float32, ``log(1 - p)`` is -inf and the loss NaN; the loss curve alone reads as a learning rate too high.
``loop: log of a probability`` names the log instead (and the learning rate and non-finite monitors defer to it);
the twin on ``F.binary_cross_entropy_with_logits`` and a clamped hand-written loss are not named."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.probability_logs import probability_log_verdict, unguarded_log


def _hand_bce(z, y):
    p = torch.sigmoid(z)
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()


def _clamped_bce(z, y):
    p = torch.sigmoid(z).clamp(1e-7, 1 - 1e-7)
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()


FORMS = {
    "hand-written BCE": (_hand_bce, "log(1 - sigmoid(z))"),
    "log(1 - sigmoid) alone": (lambda z, y: -torch.log(1 - torch.sigmoid(z)).mean(), "log(1 - sigmoid(z))"),
    "log of softmax, picked": (lambda z, y: -torch.log(F.softmax(z, 1))[torch.arange(len(z)), 0].mean(),
                               "log(softmax(z))"),
    "clamped": (_clamped_bce, None),
    "epsilon added": (lambda z, y: -(y * torch.log(torch.sigmoid(z) + 1e-8)).mean(), None),
    "logsigmoid": (lambda z, y: -(y * F.logsigmoid(z) + (1 - y) * F.logsigmoid(-z)).mean(), None),
    "with logits": (F.binary_cross_entropy_with_logits, None),
    "log_softmax": (lambda z, y: -F.log_softmax(z, 1)[:, 0].mean(), None),
}


@pytest.mark.parametrize("name", list(FORMS))
def test_the_log_read_from_the_losss_graph(name):
    loss_fn, expected = FORMS[name]
    z = torch.randn(8, 3 if "softmax" in name else 1, requires_grad=True)
    y = torch.ones_like(z) if "softmax" not in name else None
    loss = loss_fn(z, y)
    loss.backward()  # the graph's structure outlives backward()
    assert unguarded_log(loss) == expected


def test_named_only_when_the_loss_turned_non_finite():
    assert probability_log_verdict("log(1 - sigmoid(z))", [0.7, 0.5, 0.3]) is None
    v = probability_log_verdict("log(1 - sigmoid(z))", [0.7, 0.5, math.nan])
    assert v.status == "fail" and "step 2" in v.value and "binary_cross_entropy_with_logits" in v.advice


def _run(loss_fn):
    """A user's loop: a small classifier on well separated data, Adam at a rate that makes it confident fast."""
    torch.manual_seed(0)
    x = torch.randn(256, 10)
    y = (x[:, 0] > 0).float()
    x[:, 0] += 4 * (2 * y - 1)  # a wide margin: the logits grow past 17 within a few dozen steps
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    with doctor.watch(model, opt, every=10) as w:
        for _epoch in range(6):
            for i in range(0, 256, 32):
                loss = loss_fn(model(x[i:i + 32]).squeeze(1), y[i:i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i:i + 32])
    return w.report()


@pytest.fixture(scope="module")
def reports():
    return {name: _run(fn) for name, fn in (("hand", _hand_bce), ("logits", F.binary_cross_entropy_with_logits))}


@pytest.mark.slow
def test_watch_names_the_hand_written_bce_that_turned_nan(reports):
    named = [v for v in reports["hand"] if v.check == "loop: log of a probability"]
    assert named and named[0].status == "fail" and "log(" in named[0].value, reports["hand"]
    lr = [v for v in reports["hand"] if v.check == "learning rate (loss curve)"]
    assert all(v.status not in ("warn", "fail") for v in lr), lr


@pytest.mark.slow
def test_watch_leaves_the_logits_twin_alone(reports):
    assert not [v for v in reports["logits"] if v.check == "loop: log of a probability"]
    assert not [v for v in reports["logits"] if v.status == "fail"], reports["logits"]
