"""Outputs and losses kept with their graphs for a whole epoch of a small data set (5 steps per epoch): no earlier
step count reaches the long-epoch reading, but every epoch's graphs die together when the epoch's list (or running
sum) is made anew. The latest output kept for logging, and a bounded window of them, free one step's graph per
step and pass."""

import collections

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

OUTPUTS = "loop: outputs kept with their graphs"
LOSSES = "loop: loss tensors kept"


def _train(keep, epochs: int = 6):
    """``epochs`` epochs of 5 batches; ``keep(store, out, loss)`` is what the loop keeps of each step in ``store``,
    made anew at each epoch's start (``store["last"]``, a deque of 3, lives through the run)."""
    torch.manual_seed(0)
    x = torch.randn(80, 10)
    y = (x[:, 0] + x[:, 1] > 0).long()
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    window = collections.deque(maxlen=3)
    with doctor.watch(model, opt) as w:
        for _ in range(epochs):
            store = {"preds": [], "losses": [], "total": 0.0, "window": window}
            for xb, yb in loader:
                out = model(xb)
                loss = F.cross_entropy(out, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
                keep(store, out, loss)
    return {v.check: v for v in w.report().verdicts if v.check in (OUTPUTS, LOSSES)}


@pytest.mark.parametrize("keep, check, said", [
    (lambda s, out, loss: s["preds"].append(out), OUTPUTS, "the model's outputs were kept with their autograd graphs "
                                                           "through each epoch"),
    (lambda s, out, loss: s["losses"].append(loss), LOSSES, "the loss tensors were kept"),
    (lambda s, out, loss: s.__setitem__("total", s["total"] + loss), LOSSES, "the losses' autograd graphs were kept"),
], ids=["outputs", "losses", "running sum"])
def test_graphs_kept_through_each_short_epoch_are_named(keep, check, said):
    found = _train(keep)
    assert set(found) == {check} and found[check].status == "warn", found
    assert said in found[check].value and "freed together at its end (5 times" in found[check].value, found


@pytest.mark.parametrize("keep", [
    lambda s, out, loss: s["preds"].append(out.detach()),
    lambda s, out, loss: s.__setitem__("total", s["total"] + loss.item()),
    lambda s, out, loss: s.__setitem__("last", out),  # the latest output, for the log
    lambda s, out, loss: s["window"].append(out),  # a bounded window of the latest 3
], ids=["detached", "item", "latest", "window of 3"])
def test_detached_values_the_latest_output_and_a_small_window_pass(keep):
    assert _train(keep) == {}
