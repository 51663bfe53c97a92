"""A validation loss that never improves on its first value and climbs while the training loss falls is not a
pass of the overfitting verdict, even when evaluation noise breaks every run of 5 rising evaluations."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.diagnosis import overfitting


class Net(nn.Module):
    def __init__(self, d=20, h=64, c=4):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(d, h), nn.Linear(h, h), nn.Linear(h, c)

    def forward(self, x):
        return self.out(F.relu(self.fc2(F.relu(self.fc1(x)))))


def data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=g)
    y = (x @ torch.randn(20, 4, generator=torch.Generator().manual_seed(99))).argmax(1)
    return x, y


def run(aligned, n_train, n_val, epochs, opt_name="sgd"):
    torch.manual_seed(0)
    xtr, ytr = data(n_train, 0)
    if not aligned:
        xtr = xtr[torch.randperm(n_train, generator=torch.Generator().manual_seed(1))]  # x shuffled apart from y
    xva, yva = data(n_val, 100)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9) if opt_name == "sgd" else \
        torch.optim.Adam(model.parameters(), lr=1e-3)
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
    return [v for _, v, _ in w._val], {v.check: v for v in w.report()}


@pytest.mark.slow  # 0.50 s each on a 2-core CPU (RESULTS §51)
def test_misaligned_labels_rising_validation_without_five_in_a_row_warns():
    vals, verdicts = run(aligned=False, n_train=2000, n_val=500, epochs=8)
    # the oracle: validation ends above where it began, never clearly below it, and rose on most evaluations but
    # never 5 in a row
    rises = [b > a for a, b in zip(vals, vals[1:], strict=False)]
    assert vals[-1] > vals[0] + 0.03 and min(vals[1:]) > vals[0] - 0.005
    assert sum(rises) > len(rises) / 2 and "True" * 5 not in "".join(map(str, rises))
    assert "memorization" in verdicts["learning rate (loss curve)"].value  # the curve's reading agrees
    v = verdicts["overfitting"]
    assert v.status == "warn"
    assert "validation never improved" in v.value
    assert "labels are aligned" in v.advice


@pytest.mark.slow  # 0.3-1.2 s each
def test_healthy_loop_with_a_noisy_small_validation_set_passes():
    vals, verdicts = run(aligned=True, n_train=1500, n_val=40, epochs=12, opt_name="adam")
    assert min(vals) < vals[0] - 0.3  # the oracle: validation improves with training
    assert verdicts["overfitting"].status == "pass"


def test_validation_flat_and_noisy_from_a_first_epoch_that_converged_passes():
    # the first epoch's training loss is the mean of its steps, the early high ones included: validation reached
    # its level at the first evaluation and only scatters around it (no trend), which is no overfitting
    history = [{"train_loss": t, "val_loss": v} for t, v in
               zip([0.5, 0.1, 0.09, 0.085, 0.08, 0.078], [0.100, 0.104, 0.099, 0.106, 0.101, 0.103], strict=True)]
    assert overfitting(history, None).status == "pass"
    rising = [dict(h, val_loss=0.100 + 0.004 * i + (0.002 if i % 2 else 0.0)) for i, h in enumerate(history)]
    assert overfitting(rising, None).status == "warn"
