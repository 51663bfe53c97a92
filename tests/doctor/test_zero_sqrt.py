"""The doctor on an embedding net trained with a contrastive loss on a Euclidean distance written out by hand,
``((z[:, None] - z[None]) ** 2).sum(-1).sqrt()``: its diagonal is 0, the derivative of sqrt there infinite, and the
first step's gradient NaN although the loss is finite; the loss curve alone reads as a learning rate too high from
step 1. ``loop: square root at 0`` names the root; the twin with an epsilon inside the root is not named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.zero_sqrt import nan_gradient_through_root, unguarded_root


def _distances(z, eps=0.0):
    sq = ((z[:, None] - z[None]) ** 2).sum(-1)
    return (sq + eps).sqrt() if eps else sq.sqrt()


FORMS = {
    "sqrt of a sum of squares": (lambda z: _distances(z).mean(), "sqrt"),
    "power 0.5": (lambda z: (((z[:, None] - z[None]) ** 2).sum(-1) ** 0.5).mean(), "** 0.5"),
    "epsilon inside": (lambda z: _distances(z, 1e-12).mean(), None),
    "clamped": (lambda z: ((z[:, None] - z[None]) ** 2).sum(-1).clamp_min(1e-12).sqrt().mean(), None),
    "cdist": (lambda z: torch.cdist(z, z).mean(), None),
    "squared distance": (lambda z: ((z[:, None] - z[None]) ** 2).sum(-1).mean(), None),
}


@pytest.mark.parametrize("name", list(FORMS))
def test_the_root_read_from_the_losss_graph(name):
    loss_fn, expected = FORMS[name]
    z = torch.randn(6, 4, requires_grad=True)
    loss = loss_fn(z)
    loss.backward()
    assert unguarded_root(loss) == expected


def _contrastive(z, t, eps=0.0, margin=2.0):
    d = _distances(z, eps)
    same = (t[:, None] == t[None]).float()
    return (same * d ** 2 + (1 - same) * F.relu(margin - d) ** 2).mean()


def test_named_only_where_the_finite_loss_left_a_nan_gradient():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, t = torch.randn(8, 4), torch.randint(0, 2, (8,))
    loss = _contrastive(model(x), t)
    loss.backward()
    assert nan_gradient_through_root(loss, model) == "sqrt"
    model.zero_grad()
    loss = _contrastive(model(x), t, eps=1e-12)
    loss.backward()
    assert nan_gradient_through_root(loss, model) is None


def _run(eps):
    torch.manual_seed(0)
    x, t = torch.randn(128, 8), torch.randint(0, 4, (128,))
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 8))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with doctor.watch(model, opt, every=5) as w:
        for _epoch in range(3):
            for i in range(0, 128, 16):
                loss = _contrastive(model(x[i:i + 16]), t[i:i + 16], eps)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=t[i:i + 16])
    return w.report()


@pytest.fixture(scope="module")
def reports():
    return {"bug": _run(0.0), "twin": _run(1e-12)}


@pytest.mark.slow
def test_watch_names_the_root_not_the_learning_rate(reports):
    named = [v for v in reports["bug"] if v.check == "loop: square root at 0"]
    assert named and named[0].status == "fail", reports["bug"]
    assert not [v for v in reports["bug"] if v.check.startswith(("learning rate", "monitor: non-finite"))
                and v.status in ("warn", "fail")], reports["bug"]


@pytest.mark.slow
def test_watch_leaves_the_epsilon_twin_alone(reports):
    assert not [v for v in reports["twin"] if v.check == "loop: square root at 0"]
