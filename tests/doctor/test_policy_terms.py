"""A policy-gradient term read from the loss's graph (:mod:`trainwell.doctor.policy_terms`): an actor-critic over
two actions, whose critic's squared error shares the loss, is read as a policy gradient (no label-order warning on
its per-episode returns, no learning-rate reading of its loss curve), while a supervised 2-class loop written the
same way (a hand-written, class-weighted cross-entropy) still has its unshuffled labels named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.policy_terms import negative_share, weighted_log_probabilities


def _verdict(report, check):
    return next(v for v in report.verdicts if v.check == check)


class ActorCritic(nn.Module):
    def __init__(self, cells):
        super().__init__()
        self.policy = nn.Sequential(nn.Linear(cells, 16), nn.Tanh(), nn.Linear(16, 2))
        self.value = nn.Sequential(nn.Linear(cells, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, s):
        return self.policy(s), self.value(s).squeeze(-1)


def _actor_critic(episodes=30, cells=6):
    """REINFORCE with a learned baseline on a corridor (Sutton & Barto 13.4): one update per episode, the loss the
    policy term plus the critic's squared error minus an entropy bonus; returns passed as the targets."""
    torch.manual_seed(0)
    model = ActorCritic(cells)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(episodes):
            pos, states, actions, rewards = 0, [], [], []
            for _ in range(20):
                s = F.one_hot(torch.tensor(pos), cells).float()
                with torch.no_grad():
                    a = torch.distributions.Categorical(logits=model(s)[0]).sample().item()
                states.append(s)
                actions.append(a)
                pos = max(0, pos + (1 if a == 1 else -1))
                rewards.append(1.0 if pos == cells - 1 else -0.02)
                if pos == cells - 1:
                    break
            g, returns = 0.0, []
            for r in reversed(rewards):
                g = r + 0.97 * g
                returns.insert(0, g)
            returns = torch.tensor(returns)
            logits, values = model(torch.stack(states))
            logp = F.log_softmax(logits, -1).gather(1, torch.tensor(actions).unsqueeze(1)).squeeze(1)
            adv = returns - values.detach()
            entropy = -(F.softmax(logits, -1) * F.log_softmax(logits, -1)).sum(-1).mean()
            loss = -(logp * adv).mean() + 0.5 * F.mse_loss(values, returns) - 0.01 * entropy
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=returns)
    return w.report()


@pytest.mark.slow  # 1.4 s on a 2-core CPU
def test_an_actor_critic_over_two_actions_is_read_as_a_policy_gradient():
    report = _actor_critic()
    labels = _verdict(report, "loop: labels")
    assert labels.status == "pass" and "policy gradient" in labels.value
    loss = _verdict(report, "loop: loss")
    assert loss.status == "info" and "take no gradient" in loss.value
    assert _verdict(report, "learning rate (loss curve)").status in ("info", "pass", "skip")
    assert not [v for v in report.verdicts if v.status in ("warn", "fail")]


def _sorted_two_classes(weighted: bool):
    """A 2-class classifier on data sorted by label, never shuffled; its loss written out as a class-weighted
    cross-entropy (``weighted``) or as the plain picked log-probability."""
    torch.manual_seed(0)
    x = torch.randn(512, 8)
    y = (x[:, 0] > 0).long()
    order = y.argsort(stable=True)
    x, y = x[order], y[order]
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    class_weight = torch.tensor([1.0, 2.0])
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(2):
            for i in range(0, 512, 32):
                xb, yb = x[i:i + 32], y[i:i + 32]
                logp = F.log_softmax(model(xb), 1).gather(1, yb[:, None]).squeeze(1)
                loss = -(logp * class_weight[yb]).mean() if weighted else -logp.mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    return w.report()


@pytest.mark.parametrize("weighted", [True, False])
def test_unshuffled_labels_under_a_hand_written_cross_entropy_are_still_named(weighted):
    labels = _verdict(_sorted_two_classes(weighted), "loop: labels")
    assert labels.status == "warn" and "policy" not in labels.value


@pytest.mark.parametrize("form", ["gather", "categorical", "index", "log_of_softmax", "categorical_probs",
                                  "cross_entropy_none"])
def test_the_weights_of_a_picked_log_probability_are_read_from_the_graph(form):
    torch.manual_seed(0)
    z = torch.randn(6, 3, requires_grad=True) * 1.0
    a = torch.tensor([0, 1, 2, 0, 1, 2])
    adv = torch.tensor([1.0, -0.5, 0.2, -1.0, 0.3, 0.0])
    logp = {"gather": lambda: F.log_softmax(z, 1).gather(1, a[:, None]).squeeze(1),
            "categorical": lambda: torch.distributions.Categorical(logits=z).log_prob(a),
            "index": lambda: F.log_softmax(z, 1)[torch.arange(6), a],
            "log_of_softmax": lambda: torch.log(F.softmax(z, 1).gather(1, a[:, None])).squeeze(1),
            "categorical_probs": lambda: torch.distributions.Categorical(probs=F.softmax(z, 1)).log_prob(a),
            "cross_entropy_none": lambda: None}[form]()
    loss = (F.cross_entropy(z, a, reduction="none") * adv).mean() if logp is None else -(logp * adv).mean()
    found = weighted_log_probabilities(loss)
    assert len(found) == 1 and torch.equal(found[0], adv.double())
    assert negative_share(found[0]) == pytest.approx(1.5 / 3.0)


def test_products_that_are_not_weighted_log_probabilities_are_not_read():
    z = torch.randn(6, 3, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    soft = torch.full((6, 3), 1 / 3)
    logp = F.log_softmax(z, 1)
    pt = logp.gather(1, y[:, None]).exp()
    assert weighted_log_probabilities(-(logp * soft).sum(1).mean()) == []  # soft targets: no entry picked
    assert weighted_log_probabilities(-((1 - pt) ** 2 * logp.gather(1, y[:, None])).mean()) == []  # focal: both
    assert weighted_log_probabilities(-(logp.gather(1, y[:, None]) * 0.5).mean()) == []  # a constant factor
    (z ** 2).sum().backward()  # no product of a log-probability at all
    assert weighted_log_probabilities(torch.tensor(1.0)) == []
