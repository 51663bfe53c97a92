"""The whole validation set in one loss call with ``nn.CrossEntropyLoss(reduction="sum")``, the sum given to
``w.validate`` without dividing it by the examples, while the training loss is the default mean: the validation
loss reads len(val_set) times the training loss's measure. The watch reads the one call (its rows, reduction and
value) against the training loss's mean and names the wrong denominator; the sum divided by the examples passes.
One call is read only where the training loss is known to be a mean per target: a loop that trains on sums too is
not judged."""

import torch
from torch import nn

from trainwell import doctor
from trainwell.doctor.average_forms import matched

NAME = "loop: validation loss average"


def _run(divided: bool):
    """SGD on 384 examples for 3 epochs, a validation after each over 128 held-out ones in one call."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(10, 3, generator=g)
    x = torch.randn(512, 10, generator=g)
    y = (x @ w).argmax(1)
    x, xv, y, yv = x[:384], x[384:], y[:384], y[384:]
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    criterion, summed = nn.CrossEntropyLoss(), nn.CrossEntropyLoss(reduction="sum")
    with doctor.watch(model, opt) as watch:
        for _ in range(3):
            model.train()
            for i in range(0, len(x), 32):
                loss = criterion(model(x[i : i + 32]), y[i : i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                watch.step(loss, y=y[i : i + 32])
            model.eval()
            with torch.no_grad():
                val_loss = summed(model(xv), yv).item()
            watch.validate(val_loss / len(xv) if divided else val_loss)
    return {v.check: v for v in watch.report()}


def test_a_summed_validation_never_divided_fails():
    v = _run(divided=False)[NAME]
    assert v.status == "fail", v
    assert "the sum over the 128 examples of one loss call (reduction='sum'), never divided" in v.value, v


def test_the_sum_divided_by_the_examples_passes():
    v = _run(divided=True)
    assert NAME not in v or v[NAME].status == "pass", v.get(NAME)


def test_one_call_is_read_only_against_a_training_loss_per_target():
    call = [(128, "sum", 64.0)]  # the mean per example is 0.5
    assert matched(64.0, call, per_target=True) == ("sums", "batches")
    assert matched(0.5, call, per_target=True) == ("right", None)
    assert matched(64.0, call) == (None, None)  # the training loss's reduction unknown (a sum, maybe): not read
    mean_call = [(128, "mean", 0.5)]
    assert matched(0.5 / 128, mean_call, per_target=True) == ("means", "units")
