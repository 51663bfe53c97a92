"""A training loss that falls slowly while the validation loss never improves is memorization, not a low rate."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.memorizing_curve import memorizing
from trainwell.doctor.verdict import Verdict

CURVE = "learning rate (loss curve)"


class Net(nn.Module):
    def __init__(self, d=20, h=64, c=4):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(d, h), nn.Linear(h, h), nn.Linear(h, c)

    def forward(self, x):
        return self.out(F.relu(self.fc2(F.relu(self.fc1(x)))))


def data(n, aligned, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=g)
    y = (x @ torch.randn(20, 4, generator=torch.Generator().manual_seed(99))).argmax(1)
    if not aligned:
        x = x[torch.randperm(n, generator=g)]  # inputs shuffled apart from their labels
    return x, y


def run(aligned, lr, momentum, epochs=8):
    torch.manual_seed(0)
    xtr, ytr = data(1500, aligned)
    xva, yva = data(500, True, seed=1)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    loader = DataLoader(TensorDataset(xtr, ytr), batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    with doctor.watch(model, opt) as w:
        for _ in range(epochs):
            model.train()
            for xb, yb in loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            model.eval()
            with torch.no_grad():
                w.validate(F.cross_entropy(model(xva), yva).item())
    return w, {v.check: v for v in w.report()}


@pytest.mark.slow  # 0.27 s each on a 2-core CPU (RESULTS §51)
def test_misaligned_labels_slow_fall_is_named_memorization_not_a_low_rate():
    w, verdicts = run(aligned=False, lr=0.05, momentum=0.9)
    vals = [v for _, v, _ in w._val]
    trains = w.losses
    # the oracle: the training loss fell while validation ended worse than it began, near the untrained ln C
    assert sum(trains[-20:]) / 20 < sum(trains[:20]) / 20 - 0.05
    assert vals[-1] > vals[0] and min(vals) > math.log(4) - 0.05
    curve = verdicts[CURVE]
    assert str(curve.value).startswith("too low")
    assert curve.status == "warn"
    assert "memorization" in curve.value
    assert "raise the learning rate" not in (curve.advice or "")
    assert "labels are aligned" in curve.advice


@pytest.mark.slow  # ~0.5 s: a watched loop or check run
def test_slow_rate_with_validation_improving_still_says_raise():
    w, verdicts = run(aligned=True, lr=0.02, momentum=0.0)
    vals = [v for _, v, _ in w._val]
    assert vals[-1] < vals[0] - 0.05  # the oracle: validation improves with the training loss
    curve = verdicts[CURVE]
    assert str(curve.value).startswith("too low")
    assert "memorization" not in curve.value
    assert "raise the learning rate" in curve.advice


@pytest.mark.slow  # 0.28 s each on a 2-core CPU (RESULTS §51)
def test_healthy_loop_is_unchanged():
    w, verdicts = run(aligned=True, lr=0.05, momentum=0.9)
    curve = verdicts[CURVE]
    assert curve.status == "pass"
    assert "memorization" not in curve.value


def _too_low():
    return Verdict(CURVE, "warn", "too low: slow, near-linear decrease", "-", "raise the learning rate (by 3-10x)")


def test_validation_never_below_ln_c_is_memorization_even_when_it_falls_towards_it():
    history = [{"train_loss": t, "val_loss": v} for t, v in [(1.40, 1.50), (1.30, 1.44), (1.20, 1.40)]]
    assert 1.40 > math.log(4)  # the oracle: the best validation loss stays above the untrained level
    assert "memorization" in memorizing(_too_low(), history, classes=4).value
    assert memorizing(_too_low(), history, classes=None).advice.startswith("raise")  # it did improve


def test_fewer_than_three_evaluations_leave_the_curve_alone():
    history = [{"train_loss": t, "val_loss": v} for t, v in [(1.40, 1.40), (1.20, 1.45)]]
    assert memorizing(_too_low(), history, classes=4) == _too_low()


def clusters(n, seed):
    """Four well-separated Gaussian clusters in 16 dimensions, labelled by cluster."""
    g = torch.Generator().manual_seed(seed)
    centers = 2.0 * torch.randn(4, 16, generator=torch.Generator().manual_seed(99))
    y = torch.randint(0, 4, (n,), generator=g)
    return centers[y] + torch.randn(n, 16, generator=g), y


@pytest.mark.slow  # 0.31 s each on a 2-core CPU (RESULTS §51)
def test_distillation_loss_on_another_scale_than_its_validation_is_no_memorization():
    torch.manual_seed(0)
    xtr, ytr = clusters(768, 0)
    xva, yva = clusters(256, 1)
    teacher = nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Linear(128, 4))
    opt_t = torch.optim.Adam(teacher.parameters(), lr=1e-2)
    for _ in range(100):
        opt_t.zero_grad()
        F.cross_entropy(teacher(xtr), ytr).backward()
        opt_t.step()
    student, temperature = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 4)), 4.0
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(xtr, ytr), batch_size=32, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    with doctor.watch(student, opt) as w:
        for _ in range(3):
            student.train()
            for xb, yb in loader:
                with torch.no_grad():
                    soft = F.softmax(teacher(xb) / temperature, dim=1)
                out = student(xb)
                kd = F.kl_div(F.log_softmax(out / temperature, dim=1), soft, reduction="batchmean")
                loss = 0.5 * kd * temperature**2 + 0.5 * F.cross_entropy(out, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            student.eval()
            with torch.no_grad():
                w.validate(F.cross_entropy(student(xva), yva).item())
    vals = [v for _, v, _ in w._val]
    assert min(vals[1:]) < 0.5 * vals[0]  # the oracle: the validation loss more than halved
    assert "memorization" not in str({v.check: v for v in w.report()}[CURVE].value)


def test_validation_improving_as_much_relative_to_its_own_scale_is_no_memorization():
    history = [{"train_loss": t, "val_loss": v} for t, v in [(10.0, 0.4), (6.0, 0.2), (3.0, 0.1)]]
    assert memorizing(_too_low(), history).advice.startswith("raise")  # validation fell 75%, training 70%
