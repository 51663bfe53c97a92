"""``doctor.watch`` on cross-entropy against soft targets (mixup's mixed labels): the loss's form cannot be read from
the gradient alone (it marks several classes per row), so it is read with the targets given to ``w.step``;
whatever the mixing weights drawn, the loss reads as what it is."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.soft_targets import soft_cross_entropy

D, C = 16, 5


def _mixup_loop(swapped, give_targets=True, seed=0):
    """Mixup (Zhang et al. 2018) as users write it, with Beta(0.4, 0.4) weights; ``swapped``: the targets mixed
    with the weights the other way round (the loss is still cross-entropy against them)."""
    torch.manual_seed(seed)
    x = torch.randn(512, D)
    y = (x @ torch.randn(D, C)).argmax(1)
    model = nn.Sequential(nn.Linear(D, 32), nn.ReLU(), nn.Linear(32, C))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    beta = torch.distributions.Beta(0.4, 0.4)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(2):
            for i in range(0, len(x), 32):
                xb, yb = x[i : i + 32], y[i : i + 32]
                lam, perm = beta.sample().item(), torch.randperm(len(xb))
                onehot = F.one_hot(yb, C).float()
                a, b = (1 - lam, lam) if swapped else (lam, 1 - lam)
                target = a * onehot + b * onehot[perm]
                loss = F.cross_entropy(model(lam * xb + (1 - lam) * xb[perm]), target)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=target if give_targets else None)
    return w.report()


@pytest.mark.parametrize("swapped", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_mixup_reads_as_cross_entropy_against_its_soft_targets(swapped, seed):
    v = _mixup_loop(swapped, seed=seed)["loop: loss"]
    assert v.status == "pass" and "mean cross-entropy (or KL divergence) against the soft targets" in v.value


def test_mixup_without_its_targets_is_not_called_something_other_than_a_softmax_loss():
    v = _mixup_loop(False, give_targets=False)["loop: loss"]
    assert v.status in ("skip", "pass")
    assert "not a softmax cross-entropy" not in v.value


def test_the_soft_form_against_torchs_gradient():
    torch.manual_seed(0)
    z = torch.randn(16, C, requires_grad=True)
    t = torch.softmax(torch.randn(16, C), 1)
    F.cross_entropy(z, t, reduction="sum").backward()
    assert soft_cross_entropy(z.detach(), z.grad, t)["weight"] == pytest.approx(16, rel=1e-6)
    z.grad = None
    F.mse_loss(torch.softmax(z, 1), t).backward()  # a softmax loss of another form
    assert soft_cross_entropy(z.detach(), z.grad, t) is None
