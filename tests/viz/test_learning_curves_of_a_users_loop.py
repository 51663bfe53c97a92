"""The loss-curve figure of a history written by a user's own loop: what each panel draws is what the epochs
recorded (oracle: the history itself)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.viz import plots

pytestmark = pytest.mark.slow  # matplotlib's first drawing: seconds


def _drawn(monkeypatch, history, tmp_path):
    figures = []
    real_save = plots.save
    monkeypatch.setattr(plots, "save", lambda fig, path, **kw: figures.append(fig) or real_save(fig, path, **kw))
    assert plots.learning_curves(history, tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    return figures[0].axes


def test_a_regression_loop_that_validates_every_other_epoch(monkeypatch, tmp_path):
    torch.manual_seed(0)
    model, x, y = nn.Linear(3, 1), torch.randn(32, 3), torch.randn(32, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    history = []
    for epoch in range(6):  # the user's loop: no accuracy, no learning rate, validation on even epochs only
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        record = {"epoch": epoch, "train_loss": loss.item(), "train_acc": math.nan}
        if epoch % 2 == 0:
            record["val_loss"] = F.mse_loss(model(x), y).item()
        history.append(record)
    ax_loss, ax_acc, ax_lr = _drawn(monkeypatch, history, tmp_path)
    train, val = ax_loss.lines
    assert list(train.get_xdata()) == [1, 2, 3, 4, 5, 6]
    assert list(val.get_xdata()) == [1, 3, 5]
    assert list(val.get_ydata()) == [r["val_loss"] for r in history if "val_loss" in r]
    for ax, what in ((ax_acc, "no accuracy recorded"), (ax_lr, "no learning rate recorded")):
        assert not ax.lines and [t.get_text() for t in ax.texts] == [what]
        assert ax.get_xlim() == (0.5, 6.5)
    assert ax_acc.get_legend() is None


def test_a_classifier_history_draws_every_panel(monkeypatch, tmp_path):
    history = [{"epoch": e, "train_loss": 1.0 / (e + 1), "train_acc": 0.5 + 0.1 * e, "val_loss": 1.2 / (e + 1),
                "val_acc": 0.4 + 0.1 * e, "lr": 0.1} for e in range(3)]
    ax_loss, ax_acc, ax_lr = _drawn(monkeypatch, history, tmp_path)
    assert [len(ax.lines) for ax in (ax_loss, ax_acc, ax_lr)] == [2, 2, 1]
    assert list(ax_acc.lines[1].get_ydata()) == [r["val_acc"] for r in history]
    assert not any(ax.texts for ax in (ax_loss, ax_acc, ax_lr))
