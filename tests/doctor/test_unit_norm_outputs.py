"""The overfit check on a model whose outputs have unit norm (F.normalize at the end of forward): a contrastive
loss at temperature T sees logits within ±1/T, so its floor is the lowest loss on the unit sphere, far above 0."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.fitting import _free_outputs
from trainwell.doctor.overfit import overfit_tiny_subset


class TwoViews(nn.Module):
    """x: (B, 2, d), two augmented views of each example -> (B, 2, k) unit-norm embeddings."""

    def __init__(self, d=20, h=64, k=16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, k))

    def forward(self, x):
        return F.normalize(self.net(x), dim=-1)


def nt_xent(temperature):
    def loss(z, y=None):
        b = z.shape[0]
        z = torch.cat([z[:, 0], z[:, 1]])
        sim = z @ z.T / temperature
        sim.fill_diagonal_(float("-inf"))
        target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)])
        return F.cross_entropy(sim, target)
    return loss


def _views(n=64, d=20):
    torch.manual_seed(0)
    x = torch.randn(n, d)
    views = torch.stack([x + 0.3 * torch.randn_like(x), x + 0.3 * torch.randn_like(x)], 1)
    return views, torch.randint(0, 4, (n,))


def _sphere_bound(n, temperature):
    """A lower bound on NT-Xent over 2n unit-norm rows: the positive's logit is at most 1/T, each of the 2n - 2
    negatives' at least -1/T."""
    return math.log(1 + (2 * n - 2) * math.exp(-2 / temperature))


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_ntxent_at_temperature_one_overfits_to_the_unit_sphere_floor():
    x, y = _views()
    torch.manual_seed(0)
    model = TwoViews()
    r = doctor.check(model, x, y, nt_xent(1.0), optimizer=torch.optim.Adam(model.parameters(), lr=1e-3))
    v = r["overfit a tiny subset"]
    assert v.status == "pass", v
    floor = float(v.value.split("floor ")[1].split(":")[0])
    assert floor >= _sphere_bound(20, 1.0) - 1e-3, v  # no outputs on the sphere go below the bound
    assert "unit-norm" in v.value


def test_ntxent_at_a_low_temperature_still_overfits_towards_zero():
    x, y = _views()
    torch.manual_seed(0)
    v = overfit_tiny_subset(TwoViews(), x, y, nt_xent(0.1))
    assert v.status == "pass", v
    start, final = (float(s) for s in v.value.split(" on ")[0].removeprefix("loss ").split(" -> "))
    assert final < 0.1 * start, v


def test_free_outputs_of_a_unit_norm_model_stay_on_the_sphere():
    x, y = _views(n=20)
    torch.manual_seed(0)
    loss_fn = nt_xent(1.0)
    fitted = _free_outputs(TwoViews(), x, y, loss_fn, per_example=True)(len(x))
    assert torch.allclose(fitted.norm(dim=-1), torch.ones(20, 2), atol=1e-5)
    assert float(loss_fn(fitted, y)) >= _sphere_bound(20, 1.0) - 1e-4


@pytest.mark.slow  # 0.3-1.2 s each
def test_a_frozen_unit_norm_model_fails_and_names_the_temperature():
    x, y = _views()
    torch.manual_seed(0)
    model = TwoViews()
    for name, p in model.named_parameters():
        p.requires_grad_(name == "net.4.bias")  # only the last bias learns: no way to tell examples apart
    v = overfit_tiny_subset(model, x, y, nt_xent(1.0))
    assert v.status == "fail", v
    assert "unit norm" in v.advice and "±1/T" in v.advice, v


def sup_con(temperature):
    """Supervised contrastive loss (Khosla et al. 2020): every other example of the anchor's class is a positive;
    its floor is log(positives per anchor), at any temperature."""
    def loss(z, y):
        z = z[:, 0]
        sim = z @ z.T / temperature
        self_mask = torch.eye(len(y), dtype=torch.bool)
        log_p = sim.masked_fill(self_mask, float("-inf")).log_softmax(1)
        positive = (y[:, None] == y[None, :]) & ~self_mask
        return -(log_p.masked_fill(~positive, 0.0).sum(1) / positive.sum(1)).mean()
    return loss


@pytest.mark.slow  # 0.3-1.2 s each
def test_a_floor_the_temperature_does_not_set_is_not_blamed_on_it():
    x, _ = _views()
    y = torch.arange(len(x)) % 2  # 10 examples of each class among the 20 of the subset: 9 positives per anchor
    torch.manual_seed(0)
    model = TwoViews()
    with torch.no_grad():  # a frozen rank-1 first layer: the model sees one direction of its input
        model.net[0].weight.copy_(torch.outer(torch.randn(64), torch.randn(20)))
    model.net[0].weight.requires_grad_(False)
    v = overfit_tiny_subset(model, x, y, sup_con(0.1))
    assert v.status == "fail", v
    floor = float(v.value.split("floor ")[1].split(":")[0])
    assert abs(floor - math.log(9)) < 0.05, v  # the oracle: log(positives per anchor), at any temperature
    assert "temperature" not in v.advice and "unit norm" not in v.advice, v
