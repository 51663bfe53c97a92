"""ReduceLROnPlateau stepped on a value that moves the wrong way for its mode: an accuracy given to mode='min'
(or a loss to mode='max') never improves, so the rate is cut every few epochs while the model learns; stepped on
the validation loss, or on the accuracy with mode='max', it passes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


def _run(metric: str, mode: str = "min"):
    torch.manual_seed(0)
    centers = 1.2 * torch.randn(4, 16)
    y = torch.randint(0, 4, (1400,))
    x = centers[y] + torch.randn(1400, 16)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode, factor=0.3, patience=1)
    with doctor.watch(model, opt) as w:
        for _ in range(10):
            perm, correct, total = torch.randperm(1200), 0, 0.0
            model.train()
            for i in range(0, 1200, 100):
                b = perm[i : i + 100]
                opt.zero_grad()
                out = model(x[b])
                loss = F.cross_entropy(out, y[b])
                loss.backward()
                opt.step()
                correct += (out.argmax(1) == y[b]).sum().item()
                total += loss.item()
                w.step(loss, y=y[b])
            model.eval()
            with torch.no_grad():
                val_loss = F.cross_entropy(model(x[1200:]), y[1200:]).item()
            w.validate(val_loss)
            plateau.step({"val_loss": val_loss, "train_accuracy": correct / 1200, "train_loss": total / 12}[metric])
    return [v for v in w.report() if v.status in ("warn", "fail")]


def test_an_accuracy_given_to_mode_min_is_named():
    alarms = _run("train_accuracy")
    assert [v.check for v in alarms] == ["loop: plateau metric"], alarms
    assert "mode='min'" in alarms[0].value and "cut the rate" in alarms[0].value


def test_a_loss_given_to_mode_max_is_named():
    alarms = _run("train_loss", mode="max")
    assert [v.check for v in alarms] == ["loop: plateau metric"], alarms


@pytest.mark.slow  # ~0.4 s: a watched loop or check run
def test_the_validation_loss_or_an_accuracy_under_mode_max_passes():
    assert _run("val_loss") == []
    assert _run("train_accuracy", mode="max") == []


def test_the_validation_loss_given_to_mode_max_is_named():
    alarms = _run("val_loss", mode="max")
    assert [v.check for v in alarms] == ["loop: plateau metric"], alarms
    assert "mode='max'" in alarms[0].value and "the validation loss" in alarms[0].value
    assert "mode='min'" in alarms[0].advice
