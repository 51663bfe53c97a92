"""torch's BatchNorm momentum weighs the new batch in the running statistics (default 0.1); Keras' weighs the old
value (default 0.99). ``nn.BatchNorm1d(n, momentum=0.99)`` ported from Keras evaluates with the last training
batch's statistics alone: named by check and watch, with the momentum that was meant."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.batchnorm_momentum import HIGH, batchnorm_momentum_verdict, fast_running_stats


class Net(nn.Module):
    """A user's MLP with batch normalization after each hidden layer."""

    def __init__(self, momentum=0.1):
        super().__init__()
        self.fc1, self.bn1 = nn.Linear(16, 64), nn.BatchNorm1d(64, momentum=momentum)
        self.fc2, self.bn2 = nn.Linear(64, 64), nn.BatchNorm1d(64, momentum=momentum)
        self.out = nn.Linear(64, 5)

    def forward(self, x):
        x = F.relu(self.bn1(self.fc1(x)))
        return self.out(F.relu(self.bn2(self.fc2(x))))


def _data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = 3 * torch.randn(5, 16, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 5, (n,), generator=g)
    return centers[y] + torch.randn(n, 16, generator=g), y


def _watched(momentum):
    torch.manual_seed(0)
    x, y = _data()
    model = Net(momentum)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with doctor.watch(model, opt, every=8) as w:
        for _ in range(3):
            model.train()
            for xb, yb in loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    return {v.check: v for v in w.report().verdicts}


def test_the_modules_whose_running_statistics_follow_the_last_batch_are_found():
    model = nn.Sequential(nn.BatchNorm1d(4), nn.BatchNorm2d(4, momentum=0.9), nn.BatchNorm1d(4, momentum=None),
                          nn.InstanceNorm1d(4, momentum=0.99), nn.InstanceNorm1d(4, momentum=0.99,
                                                                                 track_running_stats=True),
                          nn.BatchNorm1d(4, momentum=0.99, track_running_stats=False))
    assert fast_running_stats(model) == [("1", 0.9), ("4", 0.99)]
    assert 0.1 < HIGH <= 0.9  # torch's default is never named; Keras' usual 0.9 and 0.99 are


def test_check_names_a_keras_momentum_with_the_value_meant():
    x, y = _data(64)
    v = {v.check: v for v in doctor.check(Net(0.99), x, y, F.cross_entropy).verdicts}
    bn = v["batchnorm momentum"]
    assert bn.status == "warn" and "'bn1' has momentum = 0.99" in bn.value and "(and 1 more)" in bn.value
    assert "write momentum=0.01" in bn.advice


@pytest.mark.parametrize("momentum", [0.1, None])
def test_check_of_torchs_momentum_or_a_cumulative_average_says_nothing_about_it(momentum):
    assert batchnorm_momentum_verdict(Net(momentum)) is None


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_watch_names_it_in_the_users_loop_and_not_in_its_healthy_twin():
    buggy, healthy = _watched(0.9), _watched(0.1)
    assert buggy["loop: batchnorm momentum"].status == "warn"
    assert "momentum=0.1" in buggy["loop: batchnorm momentum"].advice
    assert "loop: batchnorm momentum" not in healthy
    assert not [c for c, r in healthy.items() if r.status == "fail"]


def test_momentum_of_one_is_not_advised_as_zero():
    v = batchnorm_momentum_verdict(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4, momentum=1.0)))
    assert v.status == "warn" and "use 0.1, or None" in v.advice and "momentum=0 " not in v.advice
