"""The first/last gradient reading of a model with two output heads: an actor-critic whose policy and value
branches share no layer (the value loss's gradient is far larger than the policy's, by design) is not read as a
vanishing gradient; a first layer small against every head still is."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.monitors import _depth_ratio


class ActorCritic(nn.Module):
    """The user's model: separate policy and value networks, returned together."""

    def __init__(self, trunk=None):
        super().__init__()
        self.trunk = trunk or nn.Identity()
        self.policy = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))
        self.value = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, s):
        h = self.trunk(s)
        return self.policy(h), self.value(h).squeeze(-1)


def _train(model, steps=8):
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=3) as w:
        for _ in range(steps):
            s = torch.randn(32, 8)
            returns = 200.0 + 50 * torch.randn(32)  # undiscounted sums of many rewards: a value target far from 0
            logits, values = model(s)
            actions = torch.randint(0, 2, (32,))
            logp = F.log_softmax(logits, -1).gather(1, actions.unsqueeze(1)).squeeze(1)
            adv = (returns - values.detach()) * 1e-3
            loss = -(logp * adv).mean() + F.mse_loss(values, returns)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    return w.report()


def test_an_actor_critics_policy_layer_is_not_read_against_the_value_head():
    report = _train(ActorCritic())
    assert "monitor: vanishing gradients" not in report.checks


def test_a_first_layer_small_against_every_head_still_vanishes():
    trunk = nn.Sequential(nn.Linear(8, 8), *[m for _ in range(6) for m in (nn.Sigmoid(), nn.Linear(8, 8))])
    with torch.no_grad():
        for m in trunk:
            if isinstance(m, nn.Linear):
                m.weight.mul_(0.1)
    report = _train(ActorCritic(trunk))
    assert report["monitor: vanishing gradients"].status == "warn"


def test_the_ratio_against_heads():
    w = [("a.weight", 5e-3), ("p.weight", 1e-1), ("v.weight", 10.0)]
    assert _depth_ratio(w, {"p", "v"}, 1e-3) == pytest.approx(5e-2)  # 5e-4 against one head only
    assert _depth_ratio(w, set(), 1e-3) == pytest.approx(5e-4)  # one last layer: as before
    assert _depth_ratio([("a.weight", 1e-6), *w[1:]], {"p", "v"}, 1e-3) == pytest.approx(1e-5)  # small against both
    assert _depth_ratio([("a.weight", 1e4), *w[1:]], {"p", "v"}, 1e-3) == pytest.approx(1e3)  # large against both
    assert _depth_ratio([("a.weight", 500.0), *w[1:]], {"p", "v"}, 1e-3) == pytest.approx(1e3)  # against one: the top
