"""A classifier that ends with a Softplus (or exp) after its last Linear layer, trained with cross-entropy: its
scores are never negative and never exactly 0, so no ReLU's zeros show, yet the map adds nothing (softmax ignores
a shift of a row's scores) and its slope vanishes where its input sinks below 0. Raw logits keep the init's mean
over the classes (a softmax loss's gradient sums to 0 over each row), so about half of them sit below 0: scores
never below 0 on every observed step are named by the loss's verdict; the same model without the map stays
clean."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.loss_form import NON_NEGATIVE, read_form


class Net(nn.Module):
    def __init__(self, last: nn.Module | None):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 10))
        self.last = last

    def forward(self, x):
        scores = self.body(x)
        return scores if self.last is None else self.last(scores)


def _report(last: nn.Module | None) -> dict:
    torch.manual_seed(0)
    centers = torch.randn(10, 20) * 1.5
    y = torch.randint(0, 10, (640,))
    x = centers[y] + torch.randn(640, 20)
    model = Net(last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(2):
            for xb, yb in loader:
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    return {v.check: v for v in w.report()}


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_softplus_after_the_last_layer_is_named_with_its_least_score():
    loss = _report(nn.Softplus())["loop: loss"]
    assert loss.status == "warn" and "non-negative, none of 640 below 0" in loss.value
    assert NON_NEGATIVE in loss.advice and "sigmoid(z)" in loss.advice and "exactly 0" not in loss.value


def test_the_same_classifier_on_raw_logits_passes():
    loss = _report(None)["loop: loss"]
    assert loss.status == "pass" and "mean cross-entropy" in loss.value


def test_the_reading_is_the_sign_of_the_scores_under_a_cross_entropy_gradient():
    torch.manual_seed(0)
    z = torch.randn(64, 10)
    y = torch.randint(0, 10, (64,))
    for scores, bounded in ((z, False), (F.softplus(z), True), (z.exp(), True), (z - z.min() + 1e-3, True)):
        scores = scores.clone().requires_grad_(True)
        F.cross_entropy(scores, y).backward()
        read = read_form(scores.detach(), scores.grad)
        assert read["form"] == "cross_entropy" and (read["bounded"] is not None) == bounded
    few = F.softplus(z[:2, :10])  # 20 scores: a chance sign, not read
    few.requires_grad_(True)
    F.cross_entropy(few, y[:2]).backward()
    assert read_form(few.detach(), few.grad)["bounded"] is None


@pytest.mark.slow  # ~0.4 s: a watched loop or check run
def test_check_names_the_activation_module_that_ends_the_model():
    torch.manual_seed(0)
    x, y = torch.randn(64, 20), torch.randint(0, 10, (64,))
    report = {v.check: v for v in doctor.check(Net(nn.Softplus()), x, y, nn.CrossEntropyLoss())}
    layer = report["output layer"]
    assert layer.status == "warn" and "Softplus module 'last'" in layer.value and "never negative" in layer.value
    assert "output layer" not in {v.check for v in doctor.check(Net(None), x, y, nn.CrossEntropyLoss())}
    # probabilities under a loss that takes them: a Sigmoid ending a binary model is how BCELoss is fed
    binary = nn.Sequential(nn.Linear(20, 1), nn.Sigmoid())
    verdicts = doctor.check(binary, x, (y % 2).float()[:, None], nn.BCELoss())
    assert "output layer" not in {v.check for v in verdicts}
