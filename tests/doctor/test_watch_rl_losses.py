"""The doctor on a user's policy-gradient agents (REINFORCE, Williams 1992; actor-critic with an entropy bonus,
Mnih et al. 2016): the loss weighs the model's own samples by returns or advantages of both signs, so its curve is
not a supervised one, whether the policy is called on a batch of states or once per environment step."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

N_STATES, N_ACTIONS = 6, 4


def _policy():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(N_STATES, 32), nn.Tanh(), nn.Linear(32, N_ACTIONS))


def _episode(policy):
    """One episode in a corridor: action 0 moves right, the others left; -0.1 per step, +1 at the end. The policy
    is called once per environment step on one unbatched state."""
    s, log_probs, rewards = 0, [], []
    for _ in range(12):
        dist = torch.distributions.Categorical(logits=policy(F.one_hot(torch.tensor(s), N_STATES).float()))
        a = dist.sample()
        log_probs.append(dist.log_prob(a))
        s = min(N_STATES - 1, s + 1) if int(a) == 0 else max(0, s - 1)
        rewards.append(1.0 if s == N_STATES - 1 else -0.1)
        if s == N_STATES - 1:
            break
    returns, g = [], 0.0
    for r in reversed(rewards):
        g = r + 0.97 * g
        returns.insert(0, g)
    return log_probs, returns


def _reinforce(updates=40):
    """Canonical REINFORCE: 8 episodes per update, normalized discounted returns, one optimizer step each."""
    policy = _policy()
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    with doctor.watch(policy, opt, every=10) as w:
        for _ in range(updates):
            log_probs, returns = [], []
            for _ in range(8):
                lp, ret = _episode(policy)
                log_probs += lp
                returns += ret
            ret = torch.tensor(returns)
            ret = (ret - ret.mean()) / (ret.std() + 1e-8)
            loss = -(torch.stack(log_probs) * ret).sum() / 8
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    return w.report()


@pytest.mark.slow
def test_an_episodic_reinforce_loop_is_read_as_a_policy_gradient():
    report = _reinforce()
    assert report["loop: loss"].status == "info" and "policy gradient" in report["loop: loss"].value
    assert report["learning rate (loss curve)"].status in ("info", "pass")
    inputs = report["loop: inputs"]
    assert inputs.status == "pass" and inputs.value.endswith("in 7 observed steps")  # steps 0, 1, 2, 9, 19, 29, 39
    assert "entropy bonus" not in report["loop: loss"].value  # none in this loss


@pytest.mark.slow  # 0.3-1.2 s each
def test_a_classifier_called_once_per_example_is_read_as_one_mean_cross_entropy():
    """The supervised twin: forwards of one example each, their cross-entropies averaged over 32 of them, is one
    mean cross-entropy (not 16 of 32 forwards read, nor a policy gradient)."""
    torch.manual_seed(0)
    hidden = torch.randn(N_STATES, N_ACTIONS)
    model = nn.Sequential(nn.Linear(N_STATES, 32), nn.Tanh(), nn.Linear(32, N_ACTIONS))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(30):
            x = torch.randn(32, N_STATES)
            y = (x @ hidden).argmax(1)
            loss = sum(F.cross_entropy(model(x[i]), y[i]) for i in range(32)) / 32
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    verdict = w.report()["loop: loss"]
    assert verdict.status == "pass" and verdict.value.startswith("mean cross-entropy (weights sum to 1")


class _ActorCritic(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(8, 32), nn.Tanh())
        self.pi, self.v = nn.Linear(32, N_ACTIONS), nn.Linear(32, 1)

    def forward(self, x):
        h = self.trunk(x)
        return self.pi(h), self.v(h).squeeze(-1)


def _actor_critic(sign=-1.0, entropy=0.01, steps=40):
    """A contextual bandit's actor-critic: policy loss sign x log p(a) x advantage (-1 is the healthy sign), a
    value loss and an entropy bonus, one batch of 64 contexts per step."""
    torch.manual_seed(0)
    best = torch.randn(8, N_ACTIONS)
    model = _ActorCritic()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(steps):
            x = torch.randn(64, 8)
            logits, v = model(x)
            dist = torch.distributions.Categorical(logits=logits)
            a = dist.sample()
            r = (a == (x @ best).argmax(1)).float()
            adv = (r - v).detach()
            loss = sign * (dist.log_prob(a) * adv).mean() + 0.5 * F.mse_loss(v, r) - entropy * dist.entropy().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    return w.report()


def test_an_actor_critic_with_an_entropy_bonus_is_read_as_a_policy_gradient():
    report = _actor_critic()
    verdict = report["loop: loss"]
    assert verdict.status == "info" and "policy gradient" in verdict.value and "entropy bonus (beta 0.01)" in \
        verdict.value


def test_a_flipped_policy_gradient_gets_no_learning_rate_advice_and_the_sign_is_named_to_check():
    """+log p(a) x advantage is the healthy loss of the reward -r: the gradient cannot tell them apart, so the
    curve is not read for the rate, and the advice names the sign to check against the rewards."""
    report = _actor_critic(sign=1.0)
    verdict = report["loop: loss"]
    assert verdict.status == "info" and "policy gradient" in verdict.value and "check the sign" in verdict.advice
    curve = report["learning rate (loss curve)"]
    assert curve.status in ("info", "pass") and "lower the learning rate" not in curve.advice


def test_a_cross_entropy_with_a_confidence_penalty_is_not_a_policy_gradient():
    """The supervised twin: cross-entropy minus an entropy bonus (a confidence penalty) on labels has weights of
    one sign: it is not read as a policy gradient."""
    torch.manual_seed(0)
    best = torch.randn(8, N_ACTIONS)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, N_ACTIONS))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(30):
            x = torch.randn(64, 8)
            logits = model(x)
            dist = torch.distributions.Categorical(logits=logits)
            loss = F.cross_entropy(logits, (x @ best).argmax(1)) - 0.05 * dist.entropy().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    assert "policy gradient" not in w.report()["loop: loss"].value
