"""``doctor.watch`` on cross-entropy against soft targets (mixup's mixed labels): the loss's form cannot be read from
the gradient alone (it marks several classes per row), so it is read with the targets given to ``w.step``;
whatever the mixing weights drawn, the loss reads as what it is. A distillation loss's ``F.kl_div`` given
probabilities is named from the loss's value and gradient without the targets; on log_softmax it raises nothing."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.soft_targets import soft_cross_entropy

D, C = 16, 5


def _mixup_loop(swapped, give_targets=True, seed=0):
    """Mixup (Zhang et al. 2018) as users write it, with Beta(0.4, 0.4) weights; ``swapped``: the targets mixed
    with the weights the other way round (the loss is still cross-entropy against them)."""
    torch.manual_seed(seed)
    x = torch.randn(512, D)
    y = (x @ torch.randn(D, C)).argmax(1)
    model = nn.Sequential(nn.Linear(D, 32), nn.ReLU(), nn.Linear(32, C))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    beta = torch.distributions.Beta(0.4, 0.4)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(2):
            for i in range(0, len(x), 32):
                xb, yb = x[i : i + 32], y[i : i + 32]
                lam, perm = beta.sample().item(), torch.randperm(len(xb))
                onehot = F.one_hot(yb, C).float()
                a, b = (1 - lam, lam) if swapped else (lam, 1 - lam)
                target = a * onehot + b * onehot[perm]
                loss = F.cross_entropy(model(lam * xb + (1 - lam) * xb[perm]), target)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=target if give_targets else None)
    return w.report()


@pytest.mark.parametrize("swapped", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.slow  # 0.14 s each on a 2-core CPU (RESULTS §51)
def test_mixup_reads_as_cross_entropy_against_its_soft_targets(swapped, seed):
    v = _mixup_loop(swapped, seed=seed)["loop: loss"]
    assert v.status == "pass" and "mean cross-entropy (or KL divergence) against the soft targets" in v.value


def test_mixup_without_its_targets_is_not_called_something_other_than_a_softmax_loss():
    v = _mixup_loop(False, give_targets=False)["loop: loss"]
    assert v.status in ("skip", "pass")
    assert "not a softmax cross-entropy" not in v.value


def test_the_soft_form_against_torchs_gradient():
    torch.manual_seed(0)
    z = torch.randn(16, C, requires_grad=True)
    t = torch.softmax(torch.randn(16, C), 1)
    F.cross_entropy(z, t, reduction="sum").backward()
    assert soft_cross_entropy(z.detach(), z.grad, t)["weight"] == pytest.approx(16, rel=1e-6)
    z.grad = None
    F.mse_loss(torch.softmax(z, 1), t).backward()  # a softmax loss of another form
    assert soft_cross_entropy(z.detach(), z.grad, t) is None


class _Student(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.head = nn.Sequential(nn.Linear(10, 32), nn.ReLU()), nn.Linear(32, 5)

    def forward(self, x):
        return self.head(self.body(x))


def _distill(kl_input, temperature, reduction="batchmean"):
    """A distillation loop from a fixed teacher, F.kl_div(kl_input(student / T), softmax(teacher / T)) * T^2,
    given to w.step without its targets; returns the report."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(768, 10, generator=g)
    teacher = x @ torch.randn(10, 5, generator=g)
    torch.manual_seed(0)
    student = _Student()
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    with doctor.watch(student, opt, every=4) as w:
        for _ in range(2):
            for i in range(0, len(x), 64):
                target = F.softmax(teacher[i : i + 64] / temperature, dim=1)
                out = student(x[i : i + 64])
                loss = F.kl_div(kl_input(out / temperature), target, reduction=reduction) * temperature**2
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
    return w.report()


@pytest.mark.slow  # ~0.9 s: a watched loop or check run
@pytest.mark.parametrize("reduction", ["batchmean", "sum"])
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_kl_div_given_probabilities_is_named_from_the_loss_value_without_targets(temperature, reduction):
    v = _distill(lambda z: F.softmax(z, dim=1), temperature, reduction)["loop: loss"]
    assert v.status == "fail" and v.value.startswith("F.kl_div is given probabilities"), v
    assert "read back from it and the loss's value" in v.value and "log_softmax" in v.advice, v
    assert (f"softmax(z / {temperature:.2g})" in v.value) == (temperature != 1.0), v


@pytest.mark.slow  # ~0.5 s: a watched loop or check run
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_kl_div_on_log_softmax_without_targets_raises_no_alarm(temperature):
    r = _distill(lambda z: F.log_softmax(z, dim=1), temperature)
    assert r["loop: loss"].status not in ("warn", "fail"), r["loop: loss"]
    assert not any("kl_div" in f"{v.value} {v.advice}" for v in r), r


def test_kl_on_probabilities_reads_the_form_weight_and_temperature():
    from trainwell.doctor.kl_value import kl_on_probabilities

    g = torch.Generator().manual_seed(3)
    z = (2 * torch.randn(32, 6, generator=g, dtype=torch.float64)).requires_grad_(True)
    t = torch.softmax(torch.randn(32, 6, generator=g, dtype=torch.float64), 1)
    loss = F.kl_div(torch.softmax(z / 4, 1), t, reduction="batchmean") * 16
    loss.backward()
    read = kl_on_probabilities(z.detach(), z.grad, float(loss.detach()))
    assert read["form"] == "kl_on_softmax" and read["temperature"] == 4.0 and abs(read["weight"] - 16) < 1e-9
    good = F.kl_div(F.log_softmax(z.detach(), 1), t, reduction="batchmean")  # >= 0: not read
    assert kl_on_probabilities(z.detach(), z.grad, float(good)) is None
