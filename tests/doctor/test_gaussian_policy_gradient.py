"""REINFORCE with a Gaussian policy (a continuous action): ``-(Normal(mu, sigma).log_prob(a) * advantage)`` is a
policy-gradient loss as the Categorical one is (Sutton & Barto 2018, 13.7). Its loss rises as the policy improves
(the advantages' scale shrinks), so its curve is not read as a supervised one; a supervised Gaussian likelihood
(heteroscedastic regression) stays a loss to minimize."""

import torch
from torch import nn
from torch.distributions import Independent, Normal

from trainwell import doctor
from trainwell.doctor.policy_terms import negative_share, weighted_log_probabilities


class Policy(nn.Module):
    """The user's Gaussian policy: a mean network and a learned log standard deviation."""

    def __init__(self):
        super().__init__()
        self.mean = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 1))
        self.log_std = nn.Parameter(torch.full((1,), -0.5))

    def forward(self, s):
        return self.mean(s), self.log_std.exp().expand(len(s), 1)


def reward(s, a):
    """A one-step continuous-control task: steer the action to a target the state sets."""
    target = (s[:, :1] - 0.5 * s[:, 1:]).tanh()
    return -((a - target) ** 2).sum(-1)


def test_reinforce_with_a_normal_policy_is_read_as_a_policy_gradient():
    torch.manual_seed(0)
    policy = Policy()
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    returns = []
    with doctor.watch(policy, opt, every=20) as w:
        for _episode in range(60):
            s = torch.randn(64, 2)
            mu, std = policy(s)
            dist = Normal(mu, std)
            a = dist.sample()
            r = reward(s, a)
            loss = -(dist.log_prob(a).sum(-1) * (r - r.mean())).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
            returns.append(float(r.mean()))
    assert sum(returns[-10:]) > sum(returns[:10]) / 2  # it learned: the mean reward rose (it is negative)
    report = w.report()
    curve = report["learning rate (loss curve)"]
    assert curve.status == "info" and "(a policy gradient)" in curve.value, curve
    assert not [v for v in report if v.status in ("warn", "fail")], [v for v in report if v.status != "pass"]


def _weights(log_prob, a, adv):
    return weighted_log_probabilities(-(log_prob(a) * adv).mean())


def test_the_gaussian_log_density_is_found_in_its_written_forms():
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    s, adv = torch.randn(8, 3), torch.randn(8)
    mu = net(s)
    a = Normal(mu, 0.5).sample()
    forms = {
        "learned scale, summed": lambda a: Normal(mu, torch.ones(2, requires_grad=True).exp()).log_prob(a).sum(-1),
        "fixed scale, summed": lambda a: Normal(mu, 0.5).log_prob(a).sum(-1),
        "Independent": lambda a: Independent(Normal(mu, 0.5), 1).log_prob(a),
        "written out": lambda a: (-0.5 * ((a - mu) / 0.5) ** 2 - torch.log(torch.tensor(0.5))).sum(-1),
    }
    for form, log_prob in forms.items():
        [weights] = _weights(log_prob, a, adv)
        assert torch.equal(weights, adv.double()), form
        assert negative_share(weights) > 0.1, form
    # a supervised Gaussian likelihood: no detached weight per row, or weights of one sign (sample weights)
    y = torch.randn(8, 2)
    assert weighted_log_probabilities(-Normal(mu, 0.5).log_prob(y).sum(-1).mean()) == []
    [positive] = _weights(lambda y: Normal(mu, 0.5).log_prob(y).sum(-1), y, torch.rand(8))
    assert negative_share(positive) == 0.0
    # a squared error weighted per row is no log-density: no negation of the square
    assert weighted_log_probabilities((((y - mu) ** 2).sum(-1) * adv).mean()) == []
