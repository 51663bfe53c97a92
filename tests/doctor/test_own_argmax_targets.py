"""``preds = out.argmax(1)`` kept for an accuracy, then ``loss = criterion(out, preds)`` where ``criterion(out, y)``
was meant: the model is fitted to its own guesses and the labels never reach it. The watch names the targets; the
loss on the labels passes, and so does a supervised loss with an entropy term on the argmax beside it."""

import torch
from torch import nn

from trainwell import doctor

NAME = "loop: targets"


def _data(n=256):
    g = torch.Generator().manual_seed(0)
    centers = 3.0 * torch.randn(4, 8, generator=g)
    y = torch.randint(0, 4, (n,), generator=g)
    return centers[y] + torch.randn(n, 8, generator=g), y


def _train(targets: str):
    """The user's loop: 3 epochs of 8 batches; the loss on ``targets``: "preds", "labels" or "labels+preds"."""
    torch.manual_seed(0)
    x, y = _data()
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    criterion = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with doctor.watch(model, opt, every=4) as w:
        for _ in range(3):
            for step in range(8):
                xb, yb = x[32 * step : 32 * step + 32], y[32 * step : 32 * step + 32]
                out = model(xb)
                preds = out.argmax(1)
                loss = criterion(out, preds) if targets == "preds" else criterion(out, yb) + \
                    (0.1 * criterion(out, preds) if targets == "labels+preds" else 0)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    with torch.no_grad():
        error = float((model(x).argmax(1) != y).float().mean())
    return [v for v in w.report().verdicts if v.check == NAME and v.status != "pass"], error


def test_the_argmax_given_as_targets_is_named():
    verdicts, error = _train("preds")
    assert error > 0.4  # the oracle: the labels never reached the model
    assert verdicts and verdicts[0].status == "fail" and "argmax of its own scores" in verdicts[0].value
    assert "criterion(out, y)" in verdicts[0].advice


def test_the_labels_and_an_entropy_term_beside_them_pass():
    for targets in ("labels", "labels+preds"):
        verdicts, error = _train(targets)
        assert error < 0.2 and not verdicts
