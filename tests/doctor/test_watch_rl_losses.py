"""The doctor on a user's policy-gradient agents (REINFORCE, Williams 1992; actor-critic with an entropy bonus,
Mnih et al. 2016): the loss weighs the model's own samples by returns or advantages of both signs, so its curve is
not a supervised one, whether the policy is called on a batch of states or once per environment step."""

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


def test_an_episodic_reinforce_loop_is_read_as_a_policy_gradient():
    report = _reinforce()
    assert report["loop: loss"].status == "info" and "policy gradient" in report["loop: loss"].value
    assert report["learning rate (loss curve)"].status in ("info", "pass")
    inputs = report["loop: inputs"]
    assert inputs.status == "pass" and inputs.value.endswith("in 7 observed steps")  # steps 0, 1, 2, 9, 19, 29, 39


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

