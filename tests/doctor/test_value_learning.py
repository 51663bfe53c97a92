"""The doctor on a user's value-based agent (DQN, Mnih et al. 2015): a TD loss regresses Q(s, a) at the actions
taken towards targets the network computes, so its curve rises and spikes as values propagate; that is not read as
a learning rate too high, while a target computed with gradients (a missing ``no_grad``) is named."""

import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.loss_form import differentiated_target, one_output_per_row

N_STATES = 10


def _q_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(N_STATES, 32), nn.ReLU(), nn.Linear(32, 2))


def _transitions(n=64, seed=0):
    """A batch from a chain's replay buffer: one-hot states, actions left (0) / right (1), reward at the end."""
    rng = random.Random(seed)
    s = torch.tensor([rng.randrange(N_STATES - 1) for _ in range(n)])
    a = torch.tensor([rng.randrange(2) for _ in range(n)])
    s2 = torch.where(a == 1, (s + 1).clamp(max=N_STATES - 1), (s - 1).clamp(min=0))
    done = (s2 == N_STATES - 1).float()
    return F.one_hot(s, N_STATES).float(), a, done, F.one_hot(s2, N_STATES).float(), done


def _dqn(steps=120, detach=True, reward_scale=None):
    """A user's DQN update on replayed batches, the target network synced every 20 steps; ``reward_scale(t)``
    scales the rewards (values that grow as they propagate); returns the report."""
    q, target = _q_net(), _q_net()
    target.load_state_dict(q.state_dict())
    opt = torch.optim.Adam(q.parameters(), lr=1e-3)
    with doctor.watch(q, opt, every=10) as w:
        for t in range(steps):
            s, a, r, s2, done = _transitions(seed=t)
            r = r * (reward_scale(t) if reward_scale else 1.0)
            q_sa = q(s).gather(1, a[:, None]).squeeze(1)
            if detach:
                with torch.no_grad():
                    y = r + 0.9 * (1 - done) * target(s2).max(1).values
            else:
                y = r + 0.9 * (1 - done) * q(s2).max(1).values
            loss = F.smooth_l1_loss(q_sa, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
            if t % 20 == 19:
                target.load_state_dict(q.state_dict())
    return {v.check: v for v in w.report().verdicts}


@pytest.mark.slow  # 0.27 s each on a 2-core CPU (RESULTS §51)
def test_a_td_loss_that_spikes_as_its_targets_grow_is_information_not_a_learning_rate_failure():
    verdicts = _dqn(reward_scale=lambda t: 1.0 if t < 60 else 30.0)
    curve = verdicts["learning rate (loss curve)"]
    assert curve.status == "info" and curve.value.startswith("too high") and "Q-learning TD error" in curve.value
    # the loss reaches Q(s, a) at the actions taken only: a mean squared error over those 64 outputs
    assert verdicts["loop: loss"].status == "pass" and "over 64 output elements" in verdicts["loop: loss"].value


@pytest.mark.slow  # 0.38 s each on a 2-core CPU (RESULTS §51)
def test_a_td_target_computed_with_gradients_is_named_with_its_discount():
    verdicts = _dqn(detach=False)
    loss = verdicts["loop: loss"]
    assert loss.status == "warn" and "TD target is differentiated" in loss.value
    assert "-0.9 (the discount: gamma" in loss.value


def test_one_output_per_row_is_a_regression_at_chosen_outputs_not_a_classifier_or_a_label_hinge():
    torch.manual_seed(0)
    z = torch.randn(16, 3, requires_grad=True)
    a = torch.arange(16) % 3
    reads = []
    for loss in (lambda z: F.mse_loss(z.gather(1, a[:, None]).squeeze(1), torch.randn(16)),
                 lambda z: F.cross_entropy(z, a),
                 lambda z: F.relu(1 - z.gather(1, a[:, None])).mean() + 0 * z.sum()):
        (g,) = torch.autograd.grad(loss(z), z)
        reads.append(one_output_per_row(z.detach(), g))
    assert reads == [True, False, False]
    (g1,) = torch.autograd.grad(F.mse_loss(z.gather(1, a[:, None]).squeeze(1), torch.zeros(16)), z)
    g2 = torch.zeros(16, 3).scatter(1, (a[:, None] + 1) % 3, -0.99 * g1.sum(1, keepdim=True))
    assert abs(differentiated_target([(z.detach(), g1), (z.detach(), g2)]) - 0.99) < 1e-6
    assert differentiated_target([(z.detach(), g1), (z.detach(), g2.abs())]) is None
