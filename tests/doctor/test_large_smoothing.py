"""``nn.CrossEntropyLoss(label_smoothing=0.9)`` written for "90% on the label": torch moves 0.9 of the target off
the label, so over 4 classes the label gets 0.325 against 0.225 for each other class. The watch names it (``loop:
label smoothing``) from the outputs' gradient with the labels given to ``w.step``; 0.1, a plain cross-entropy and a
class-weighted one pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.large_smoothing import NAME, read_smoothing


def _verdict(smoothing: float):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(320, 6, generator=g)
    y = (x[:, :4] @ torch.randn(4, 4, generator=g)).argmax(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 4))
    criterion = nn.CrossEntropyLoss(label_smoothing=smoothing)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with doctor.watch(model, opt, every=3) as w:
        for i in range(0, 320, 32):
            loss = criterion(model(x[i:i + 32]), y[i:i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i:i + 32])
    return [v for v in w.report().verdicts if v.check == NAME and v.status in ("warn", "fail")]


@pytest.mark.slow
def test_label_smoothing_0_9_is_named():
    named = _verdict(0.9)
    assert named and "epsilon of 0.9" in named[0].value and "label_smoothing=0.1" in named[0].advice


@pytest.mark.slow
def test_label_smoothing_0_1_passes():
    assert not _verdict(0.1)


def _gradient(z, y, **kwargs):
    z = z.clone().requires_grad_(True)
    F.cross_entropy(z, y, **kwargs).backward()
    return z.grad


def test_the_epsilon_is_read_with_the_labels_and_weighted_losses_do_not_fit():
    g = torch.Generator().manual_seed(0)
    z, y = 3 * torch.randn(32, 5, generator=g), torch.randint(0, 5, (32,), generator=g)
    for eps in (0.0, 0.1, 0.9):
        assert abs(read_smoothing(z, _gradient(z, y, label_smoothing=eps), y) - eps) < 1e-6
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    assert read_smoothing(z, _gradient(z, y, weight=weights), y) is None
    assert read_smoothing(z, _gradient(z, y), y.float()) is None
