"""Regression targets in raw units (prices around 1e5, spread 3e4) standardized with the training mean and std for
training, while the validation loss compares the model's standardized predictions with the raw validation targets.
The validation error is then about the targets' mean squared, 1e10, at every evaluation: so large that the model's
change moves it by less than 1e-6 of its value. doctor.watch names the scale (every validation loss far above the
first training loss), not a validation loss that does not change (the trained model is the one evaluated). The
validation targets standardized with the training statistics pass."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.diagnosis import overfitting


def _train(validation_targets: str):
    """SGD on 512 standardized examples for 5 epochs, a w.validate per epoch on 128 held-out ones whose targets are
    standardized with the training mean and std ('standardized') or left raw ('raw')."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(640, 6, generator=g)
    price = 1e5 + 3e4 * (x @ torch.randn(6, generator=g)) / 6 ** 0.5
    x, xv, price, price_v = x[:512], x[512:], price[:512], price[512:]
    mu, sd = price.mean(), price.std()
    y = (price - mu) / sd
    yv = (price_v - mu) / sd if validation_targets == "standardized" else price_v
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    vals = []
    with doctor.watch(model, opt) as w:
        for _ in range(5):
            model.train()
            for i in range(0, len(x), 32):
                loss = F.mse_loss(model(x[i : i + 32]).squeeze(1), y[i : i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i : i + 32])
            model.eval()
            with torch.no_grad():
                vals.append(F.mse_loss(model(xv).squeeze(1), yv).item())
            w.validate(vals[-1])
    return {v.check: v for v in w.report()}, vals


def test_raw_validation_targets_are_named_by_their_scale_not_as_an_unchanging_loss():
    v, vals = _train("raw")
    assert min(vals) > 1e9  # the oracle: the raw targets' mean squared (1e10) dominates
    over = v["overfitting"]
    assert over.status == "warn", over
    assert over.value.startswith("every validation loss is over"), over
    assert "does not change" not in over.value


def test_standardized_validation_targets_pass():
    v, vals = _train("standardized")
    assert vals[-1] < 0.5  # the model fits the standardized targets
    assert v["overfitting"].status == "pass", v["overfitting"]


def test_the_scale_is_read_before_an_unchanging_validation_loss():
    history = [{"train_loss": t, "val_loss": 5.4e10} for t in (1.0, 0.6, 0.3, 0.2)]
    assert overfitting(history, None, first_loss=1.1).value.startswith("every validation loss is over")
    same_scale = [{"train_loss": t, "val_loss": 1.4} for t in (1.0, 0.6, 0.3, 0.2)]
    assert overfitting(same_scale, None, first_loss=1.1).value.startswith("the validation loss does not change")
