"""Validation features whose columns come in another order than the training ones (a table read with its columns
sorted): each column keeps unit scale after standardizing, so the validation inputs look like the training ones
column by column, yet the model reads them as other features. The training loss falls fast while the validation
loss never goes below its first value (nor below ln C) and then climbs: an onset of overfitting whose best
epoch is the untrained model's. Early stopping would keep nothing; the overfitting verdict says that validation
never improved and asks how the validation data is prepared, while real overfitting (validation improves first)
keeps its early-stopping advice and the same loop with the columns in order stays clean."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.diagnosis import overfitting


def _report(reordered: bool) -> dict:
    torch.manual_seed(0)
    w_true = torch.randn(20, 10)
    x, xv = torch.randn(1000, 20), torch.randn(300, 20)
    y, yv = (x @ w_true).argmax(1), (xv @ w_true).argmax(1)
    mean, std = x.mean(0), x.std(0)
    x, xv = (x - mean) / std, (xv - mean) / std
    if reordered:
        xv = xv[:, torch.randperm(20)]
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = DataLoader(TensorDataset(x, y), batch_size=50, shuffle=True)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(12):
            model.train()
            for xb, yb in loader:
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            model.eval()
            with torch.no_grad():
                w.validate(F.cross_entropy(model(xv), yv).item())
    return {v.check: v for v in w.report()}


@pytest.mark.slow  # ~0.6 s: a watched loop or check run
def test_reordered_validation_columns_read_as_nothing_carried_over_not_as_stop_earlier():
    fit = _report(reordered=True)["overfitting"]
    assert fit.status == "warn" and "onset at epoch" in fit.value and "validation never improved" in fit.value
    assert "same columns in the same order" in fit.advice and "stop earlier" not in fit.advice


@pytest.mark.slow  # ~0.8 s: a watched loop or check run
def test_the_columns_in_order_stay_clean():
    assert _report(reordered=False)["overfitting"].status == "pass"


def test_overfitting_that_improved_first_keeps_the_early_stopping_advice():
    vals = [2.0, 1.2, 0.9, 0.8, 0.85, 0.9, 1.0, 1.1, 1.2, 1.3]
    history = [{"epoch": i, "train_loss": 2.0 - 0.2 * i, "val_loss": v} for i, v in enumerate(vals)]
    fit = overfitting(history, onset_epoch=3, classes=10)
    assert fit.status == "warn" and "stop earlier" in fit.advice and "never improved" not in fit.value
    flat = [{**h, "val_loss": 2.3 + 0.1 * i} for i, h in enumerate(history)]  # never below its first nor ln 10
    fit = overfitting(flat, onset_epoch=3, classes=10)
    assert "validation never improved" in fit.value and "stop earlier" not in fit.advice
