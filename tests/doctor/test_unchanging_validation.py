"""A validation loss that does not change while the training loss falls: the user evaluates an EMA copy of the
model (``copy.deepcopy``) whose update was left out, so every validation gives the initial model's loss.
doctor.watch warns, asking whether the evaluated model is the trained one, and its train/eval mode verdict does not
claim validations in eval mode on the watched model that it never saw run. An EMA copy that is updated passes."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.diagnosis import overfitting

MODE = "loop: train/eval mode"


class DropoutMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(20, 64), nn.Linear(64, 64), nn.Linear(64, 4)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        return self.out(self.drop(F.relu(self.fc2(self.drop(F.relu(self.fc1(x)))))))


def _train(evaluate, epochs=6):
    """AdamW over 1024 examples for ``epochs`` epochs, one ``w.validate`` per epoch on 256 held-out ones.
    ``evaluate``: 'model', 'ema' (a copy updated after every step) or 'stale_ema' (the copy never updated)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1280, 20, generator=g)
    y = (x @ torch.randn(20, 4, generator=g)).argmax(1)
    xv, yv, x, y = x[:256], y[:256], x[256:], y[256:]
    model = DropoutMLP()
    ema = copy.deepcopy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    vals = []
    with doctor.watch(model, opt) as w:
        for _ in range(epochs):
            model.train()
            for i in range(0, len(x), 64):
                loss = F.cross_entropy(model(x[i : i + 64]), y[i : i + 64])
                opt.zero_grad()
                loss.backward()
                opt.step()
                if evaluate == "ema":
                    with torch.no_grad():
                        for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                            pe.mul_(0.9).add_(pm, alpha=0.1)
                w.step(loss, y=y[i : i + 64])
            evaluated = model if evaluate == "model" else ema
            evaluated.eval()
            with torch.no_grad():
                vals.append(F.cross_entropy(evaluated(xv), yv).item())
            w.validate(vals[-1])
    return {v.check: v for v in w.report()}, vals


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_an_ema_copy_never_updated_warns_that_the_validation_loss_does_not_change():
    v, vals = _train("stale_ema")
    assert max(vals) == min(vals)  # the oracle: the copy's loss is the initial model's at every epoch
    over = v["overfitting"]
    assert over.status == "warn", over
    assert over.value.startswith(f"the validation loss does not change: {vals[0]:.6g} on all 6 validations")
    assert "EMA/copy never updated" in over.advice
    mode = v[MODE]
    assert "eval mode in" not in mode.value, mode  # the watched model ran no validation forward
    assert "no forward of the watched model before 6 of the 6 w.validate() calls" in mode.value


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_an_updated_ema_copy_passes():
    v, vals = _train("ema")
    assert vals[-1] < 0.8 * vals[0]  # the copy learns
    assert v["overfitting"].status == "pass", v["overfitting"]
    assert v[MODE].status == "pass" and "their mode not seen" in v[MODE].value, v[MODE]


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_validating_the_watched_model_reads_its_mode():
    v, _ = _train("model")
    assert v["overfitting"].status == "pass", v["overfitting"]
    assert v[MODE].value.endswith("eval mode in 6 validations"), v[MODE]


def _history(train, val):
    return [{"train_loss": t, "val_loss": u} for t, u in zip(train, val, strict=True)]


def test_an_unchanging_validation_loss_needs_three_evaluations_and_a_falling_training_loss():
    falling = [1.3, 1.0, 0.8, 0.6]
    assert overfitting(_history(falling, [1.2, 1.1, 1.4, 1.4]), None).status == "pass"  # the same twice only
    assert overfitting(_history([1.3, 1.28, 1.25, 1.2], [1.4] * 4), None).status == "pass"  # training fell 8%
    moving = [1.4, 1.4 * (1 + 1e-4), 1.4 * (1 - 1e-4), 1.4]  # a model that trains moves its loss a little
    assert overfitting(_history(falling, moving), None).status == "pass"
    v = overfitting(_history(falling, [1.2, 1.4, 1.4 * (1 + 1e-8), 1.4]), None)  # the last 3: a copy loaded since
    assert v.status == "warn" and "on the last 3 of 4 validations" in v.value and "fell 40%" in v.value, v
