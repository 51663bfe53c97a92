"""Validation run in train mode (no model.eval(): dropout on) measures a loss above the model's: the overfitting
verdict's gap and onset then read the dropout, and it defers to the train/eval mode verdict that names it."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(20, 128), nn.Linear(128, 128), nn.Linear(128, 4)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        return self.out(self.drop(F.relu(self.fc2(self.drop(F.relu(self.fc1(x)))))))


def data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=g)
    y = (x @ torch.randn(20, 4, generator=torch.Generator().manual_seed(99))).argmax(1)
    return x, y


def run(eval_for_validation):
    torch.manual_seed(0)
    xtr, ytr = data(200, 0)
    xva, yva = data(500, 100)
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = DataLoader(TensorDataset(xtr, ytr), batch_size=50, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    with doctor.watch(model, opt) as w:
        for _ in range(20):
            model.train()
            for xb, yb in loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            if eval_for_validation:
                model.eval()
            with torch.no_grad():
                w.validate(F.cross_entropy(model(xva), yva).item())
    with torch.no_grad():  # the oracle: the same weights give a higher loss with dropout on
        dropped = sum(F.cross_entropy(model.train()(xva), yva).item() for _ in range(5)) / 5
        clean = F.cross_entropy(model.eval()(xva), yva).item()
    return dropped, clean, {v.check: v for v in w.report()}


@pytest.mark.slow  # 0.34 s each on a 2-core CPU (RESULTS §51)
def test_overfitting_defers_to_validations_run_in_train_mode():
    dropped, clean, verdicts = run(eval_for_validation=False)
    assert dropped > clean + 0.02
    assert verdicts["loop: train/eval mode"].status == "fail"
    v = verdicts["overfitting"]
    assert v.status == "info"
    assert "explained by 'loop: train/eval mode'" in v.value
    assert "model.eval()" in v.advice


@pytest.mark.slow  # ~0.4 s: a watched loop or check run
def test_overfitting_reads_eval_mode_validation_as_before():
    _, _, verdicts = run(eval_for_validation=True)
    assert verdicts["loop: train/eval mode"].status == "pass"
    assert "train/eval" not in verdicts["overfitting"].value
