"""The doctor's gradient check on losses that detach a tensor of their own graph on purpose: an actor-critic's
advantage ``ret - v.detach()`` (Mnih et al. 2016) and SimSiam's ``cos(p, z.detach())`` (Chen & He 2021). Autograd
treats the detached tensor as a constant, so the centred differences must hold it at its value too; a detached
scalar auxiliary loss added to the loss (it trains nothing) is still named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.gradient_check import gradient_check


class ActorCritic(nn.Module):
    """A shared body with a policy head (action logits) and a value head."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 16), nn.Tanh())
        self.pi, self.v = nn.Linear(16, 2), nn.Linear(16, 1)

    def forward(self, s):
        h = self.body(s)
        return self.pi(h), self.v(h).squeeze(-1)


def actor_critic_loss(out, target):
    """Policy gradient with the critic's value as the baseline, plus the critic's regression."""
    logits, v = out
    actions, returns = target[:, 0].long(), target[:, 1]
    advantage = returns - v.detach()
    logp = torch.log_softmax(logits, -1).gather(1, actions[:, None]).squeeze(1)
    return -(logp * advantage).mean() + 0.5 * ((returns - v) ** 2).mean()


def _rollout():
    g = torch.Generator().manual_seed(0)
    states = torch.eye(5)[torch.randint(0, 5, (32,), generator=g)]
    return states, torch.stack([torch.randint(0, 2, (32,), generator=g).float(), torch.rand(32, generator=g)], 1)


@pytest.mark.slow
def test_actor_critic_advantage_with_a_detached_baseline_passes():
    torch.manual_seed(0)
    states, target = _rollout()
    v = gradient_check(ActorCritic(), states, target, actor_critic_loss)
    assert v.status == "pass", v
    assert "held at their values" in v.value


@pytest.mark.slow
def test_detached_scalar_auxiliary_loss_is_still_named():
    torch.manual_seed(0)
    states, target = _rollout()

    def with_detached_aux(out, target):  # the bug: the value head's penalty trains nothing
        return actor_critic_loss(out, target) + 0.1 * out[1].pow(2).mean().detach()
    v = gradient_check(ActorCritic(), states, target, with_detached_aux)
    assert v.status == "fail", v
    assert "autograd does not follow" in v.advice


class SimSiam(nn.Module):
    """Encoder and predictor on two views stacked along the batch: returns (p, z) of both views."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 8))
        self.predictor = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8))

    def forward(self, views):
        z = self.encoder(views)
        return self.predictor(z), z


def simsiam_loss(out, _y):
    p, z = out
    n = len(p) // 2
    return -(F.cosine_similarity(p[:n], z[n:].detach()).mean() + F.cosine_similarity(p[n:], z[:n].detach()).mean()) / 2


def test_simsiam_stop_gradient_passes():
    torch.manual_seed(0)
    x = torch.randn(16, 8)
    views = torch.cat([x + 0.1 * torch.randn_like(x), x + 0.1 * torch.randn_like(x)])
    v = gradient_check(SimSiam(), views, torch.zeros(32), simsiam_loss)
    assert v.status == "pass", v
