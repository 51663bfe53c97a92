"""An iterator made once outside the epoch loop (``batches = iter(loader)``) is used up after the first epoch: the
later epochs run no batch and their validations read the same weights. The watch names it (``loop: steps between
validations``); a loop over the DataLoader itself, a validation before training, a loop that validates twice per
epoch and two final evaluations after a longer run pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.empty_epochs import NAME, empty_epochs


def _run(reuse_iterator: bool):
    """A user's loop: 4 epochs over a DataLoader, a validation each; the report."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    y = (x[:, 0] > 0).long()
    xv, yv = torch.randn(64, 6, generator=g), None
    yv = (xv[:, 0] > 0).long()
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    batches = iter(loader)  # made once: used up after one pass
    with doctor.watch(model, opt, every=4) as w:
        for _ in range(4):
            model.train()
            for xb, yb in (batches if reuse_iterator else loader):
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            model.eval()
            with torch.no_grad():
                w.validate(F.cross_entropy(model(xv), yv).item())
    return w.report()


@pytest.fixture(scope="module")
def reports():
    return {reuse: _run(reuse) for reuse in (True, False)}


@pytest.mark.slow
def test_an_iterator_used_up_after_the_first_epoch_is_named(reports):
    report = reports[True]
    v = next(v for v in report.verdicts if v.check == NAME)
    assert v.status == "fail" and "last 3 of 4 validations" in v.value
    assert "iter(loader)" in v.advice
    overfitting = next(v for v in report.verdicts if v.check == "overfitting")
    assert overfitting.status in ("pass", "info")  # the unchanging validation loss defers to it


@pytest.mark.slow
def test_a_loop_over_the_loader_itself_passes(reports):
    assert not any(v.check == NAME for v in reports[False].verdicts)


def test_a_baseline_validation_and_a_second_loss_per_epoch_pass():
    assert empty_epochs([0, 8, 16, 24], 24) is None  # a validation before training
    assert empty_epochs([8, 8, 16, 16, 24, 24], 24) is None  # a validation and a test loss every epoch
    assert empty_epochs([8, 16, 24, 32, 32, 32], 32) is None  # two final evaluations after a longer run
    assert empty_epochs([8, 8, 8], 8) is not None
