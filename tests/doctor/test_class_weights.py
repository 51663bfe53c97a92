"""Class weights of a user's cross-entropy on imbalanced classes: weights proportional to the class's frequency
(the rare classes weighted least) are named; balanced weights N / (C * count), and no weights, pass. The weights are
read from the loss's gradient and the frequencies from the targets given to w.step(loss, y=y)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

NAME = "loop: class weights"


def _imbalanced(n=1200, d=10, c=4):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, d, generator=g)
    y = (x @ torch.randn(d, c, generator=g) + torch.tensor([3.0, 0.0, -0.5, -1.0])).argmax(1)
    return x, y


def _train(weight_of, nll=False, epochs=2):
    """A plain loop over a shuffled DataLoader; ``weight_of(counts)`` gives the loss's class weights (or None)."""
    torch.manual_seed(0)
    x, y = _imbalanced()
    counts = torch.bincount(y, minlength=4).float()
    assert counts.max() > 3 * counts.min()  # the data set is imbalanced
    weight = weight_of(counts)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
    if nll:
        loss_fn = lambda out, t: F.nll_loss(F.log_softmax(out, 1), t, weight=weight)  # noqa: E731
    else:
        loss_fn = nn.CrossEntropyLoss(weight=weight)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(epochs):
            for xb, yb in loader:
                loss = loss_fn(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    return w.report()


def _named(report):
    return [v for v in report if v.check == NAME]


@pytest.mark.slow  # ~0.4 s: a watched loop or check run
@pytest.mark.parametrize("nll", [False, True])
def test_weights_proportional_to_class_frequency_are_named(nll):
    report = _train(lambda counts: counts / counts.sum(), nll=nll)
    found = _named(report)
    assert len(found) == 1 and found[0].status == "warn"
    assert "grow with the class's frequency (w ∝ count)" in found[0].value
    assert "N / (C * count)" in found[0].advice
    # the weights explain which classes the model favours, not the loss curve: no reading defers to them
    assert not [v for v in report if NAME in str(v.value) and v.check != NAME]


def test_balanced_weights_pass():
    assert _named(_train(lambda counts: counts.sum() / (len(counts) * counts))) == []


def test_no_weights_on_imbalanced_classes_pass():
    assert _named(_train(lambda counts: None)) == []

