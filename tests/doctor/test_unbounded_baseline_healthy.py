"""An actor-critic's loss, -log p(action) x advantage + a value regression, has no lower bound: one output for
every input (a policy certain of one action against returns of one sign) drives it towards -1e18, and the
input-independent baseline failed a healthy model with "a loss of 0, nothing to teach". Such a loss has no
input-independent baseline: the check is skipped, saying why; a supervised loss that is bounded still fails."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


class ActorCritic(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(5, 32), nn.Tanh())
        self.pi, self.v = nn.Linear(32, 2), nn.Linear(32, 1)

    def forward(self, s):
        h = self.body(s)
        return self.pi(h), self.v(h).squeeze(-1)


def actor_critic_loss(out, target):
    logits, v = out
    a, ret = target[:, 0].long(), target[:, 1]
    logp = torch.log_softmax(logits, -1).gather(1, a[:, None]).squeeze(1)
    return -(logp * (ret - v.detach())).mean() + 0.5 * ((ret - v) ** 2).mean()


def _baseline(model, x, y, loss_fn):
    return next(v for v in doctor.check(model, x, y, loss_fn) if v.check == "input-independent baseline")


@pytest.mark.slow  # ~0.4 s: a watched loop or check run
def test_an_actor_critic_loss_without_a_lower_bound_is_not_failed():
    g = torch.Generator().manual_seed(0)
    states = torch.eye(5)[torch.randint(0, 5, (64,), generator=g)]
    targets = torch.stack([torch.randint(0, 2, (64,), generator=g).float(), torch.rand(64, generator=g)], 1)
    v = _baseline(ActorCritic(), states, targets, actor_critic_loss)
    assert v.status == "skip" and "no lower bound" in v.value and "policy gradient" in v.advice


def test_a_classifier_blind_to_its_inputs_still_fails():
    class Blind(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(3))

        def forward(self, x):
            return self.bias.expand(len(x), 3)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 6, generator=g)
    v = _baseline(Blind(), x, x[:, :3].argmax(1), F.cross_entropy)
    assert v.status == "fail"
