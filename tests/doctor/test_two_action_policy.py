"""Policy gradients over two actions (CartPole's left/right): with 2 classes any zero-sum gradient fits the softmax
form with some label and weight per row, so the weights' signs are read from the loss's value
(:func:`trainwell.doctor.policy_gradient.two_class_signs`): a REINFORCE loss with centred advantages goes below 0,
where no supervised 2-class loss goes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.policy_gradient import two_class_signs


def _verdict(report, check):
    return next(v for v in report.verdicts if v.check == check)


def _corridor_reinforce(updates=40):
    """A corridor of 6 cells, action 0 right and 1 left, -0.1 per step and +1 at the end; the policy is called once
    per environment step, 8 episodes per update, normalized discounted returns."""
    torch.manual_seed(0)
    policy = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 2))
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    with doctor.watch(policy, opt, every=10) as w:
        for _ in range(updates):
            log_probs, returns = [], []
            for _ in range(8):
                s, lps, rewards = 0, [], []
                for _ in range(12):
                    dist = torch.distributions.Categorical(logits=policy(F.one_hot(torch.tensor(s), 6).float()))
                    a = dist.sample()
                    lps.append(dist.log_prob(a))
                    s = min(5, s + 1) if int(a) == 0 else max(0, s - 1)
                    rewards.append(1.0 if s == 5 else -0.1)
                    if s == 5:
                        break
                g, rets = 0.0, []
                for r in reversed(rewards):
                    g = r + 0.97 * g
                    rets.insert(0, g)
                log_probs += lps
                returns += rets
            ret = torch.tensor(returns)
            ret = (ret - ret.mean()) / (ret.std() + 1e-8)
            loss = -(torch.stack(log_probs) * ret).sum() / 8
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    return w.report()


def _contextual_bandit(steps=300):
    """Batches of 64 states, 2 actions, reward 1 for the action a fixed linear rule prefers; advantages are the
    rewards minus their batch mean. Returns the report and the reward of the first and last 20 batches."""
    torch.manual_seed(0)
    policy = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 2))
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    rule = torch.randn(4, 2)
    rewards = []
    with doctor.watch(policy, opt) as w:
        for _ in range(steps):
            s = torch.randn(64, 4)
            dist = torch.distributions.Categorical(logits=policy(s))
            a = dist.sample()
            r = (a == (s @ rule).argmax(1)).float()
            loss = -(dist.log_prob(a) * (r - r.mean())).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
            rewards.append(float(r.mean()))
    return w.report(), sum(rewards[:20]) / 20, sum(rewards[-20:]) / 20


@pytest.mark.slow  # seconds each
def test_a_two_action_reinforce_loop_is_read_as_a_policy_gradient():
    report = _corridor_reinforce()
    assert _verdict(report, "loop: loss").status == "info"
    assert "policy gradient" in _verdict(report, "loop: loss").value
    curve = _verdict(report, "learning rate (loss curve)")
    assert curve.status in ("pass", "info") and "lower the learning rate" not in curve.advice


@pytest.mark.slow  # 0.30 s each on a 2-core CPU (RESULTS §51)
def test_a_learning_two_action_bandit_gets_no_learning_rate_failure():
    report, first, last = _contextual_bandit()
    assert last > first + 0.2  # the policy learns: no advice to change its rate
    assert "policy gradient" in _verdict(report, "loop: loss").value
    curve = _verdict(report, "learning rate (loss curve)")
    assert curve.status in ("pass", "info"), curve


def _supervised_two_class(loss_of):
    """A healthy binary classifier with 2 logits, trained with the given loss of (logits, labels)."""
    torch.manual_seed(0)
    x = torch.randn(512, 8)
    y = (x[:, 0] - x[:, 1] > 0).long()
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(6):
            for i in range(0, 512, 32):
                loss = loss_of(model(x[i:i + 32]), y[i:i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i:i + 32])
    return w.report()


def _focal(z, y):
    logp = F.log_softmax(z, 1).gather(1, y[:, None]).squeeze(1)
    return (-(1 - logp.exp()) ** 2 * logp).mean()


def _distilled(z, y):
    teacher = F.one_hot(y, 2).float() * 0.8 + 0.1
    return F.kl_div(F.log_softmax(z, 1), teacher, reduction="batchmean")


@pytest.mark.slow  # 0.3-1.2 s each
def test_supervised_two_class_losses_are_not_read_as_policy_gradients():
    for loss_of in (F.cross_entropy, _focal, _distilled, F.multi_margin_loss,
                    lambda z, y: F.cross_entropy(z, y, label_smoothing=0.1)):
        report = _supervised_two_class(loss_of)
        assert "policy gradient" not in _verdict(report, "loop: loss").value
        assert "not judged" not in str(_verdict(report, "learning rate (loss curve)").value)


def _signs(loss_of, logits):
    z = logits.clone().requires_grad_()
    loss = loss_of(z)
    (g,) = torch.autograd.grad(loss, z)
    return two_class_signs(z.detach(), g, float(loss.detach()))


def test_two_class_signs_against_losses_of_known_weights():
    torch.manual_seed(0)
    z = torch.randn(64, 2)
    actions = torch.randint(0, 2, (64,))
    centred = torch.randn(64)
    centred -= centred.mean()
    logp = lambda t: F.log_softmax(t, 1).gather(1, actions[:, None]).squeeze(1)  # noqa: E731
    # weights of both signs, the loss below 0: read; with every weight positive, or every one negative, not
    loss_of = lambda t: -(logp(t) * centred).mean()  # noqa: E731
    assert float(loss_of(z)) < 0 and _signs(loss_of, z)
    assert not _signs(lambda t: -(logp(t) * centred.abs()).mean(), z)
    assert not _signs(lambda t: (logp(t) * centred.abs()).mean(), z)  # cross-entropy missing its minus sign
    assert not _signs(lambda t: F.cross_entropy(t, actions), z)
    # the value scales with the gradient: AMP's GradScaler factor (2^16) divided out reads the same
    z2 = z.clone().requires_grad_()
    loss = loss_of(z2)
    (g,) = torch.autograd.grad(loss * 2.0**16, z2)
    assert two_class_signs(z, g, float(loss), scale=2.0**16)
    assert not two_class_signs(z, g, float(loss) * 2.0**16 * 10, scale=2.0**16)
