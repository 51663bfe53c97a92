"""A running sum of loss tensors (``total_loss += loss``, ``total = total + loss``) is a tensor whose graph reaches
every step's loss: each step's autograd graph stays alive until the sum is reset, and the memory grows with the
steps. Adding ``loss.item()`` or ``loss.detach()``, or summing several losses inside one step before a single
backward (a multi-task loss, accumulated micro-batches), keeps no earlier step's graph."""

import weakref

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

KEPT = "loop: loss tensors kept"


def _data():
    torch.manual_seed(0)
    x = torch.randn(384, 10)
    return x, (x[:, 0] + x[:, 1] > 0).long()


def _model():
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))


def _epochs(add, epochs: int = 2, batch: int = 32):
    """A plain loop over ``epochs`` epochs; ``add(total, loss)`` is what it adds to its epoch's running total."""
    x, y = _data()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt) as w:
        for _ in range(epochs):
            total_loss = 0
            for i in range(0, len(x), batch):
                opt.zero_grad()
                loss = F.cross_entropy(model(x[i : i + batch]), y[i : i + batch])
                loss.backward()
                opt.step()
                w.step(loss, y=y[i : i + batch])
                total_loss = add(total_loss, loss)
    return [v for v in w.report().verdicts if v.check == KEPT]


def _add_in_place(total, loss):
    total += loss
    return total


def test_a_running_sum_of_loss_tensors_keeps_every_steps_graph_until_the_epoch_ends():
    kept = _epochs(_add_in_place)  # 12 steps an epoch: the sum holds the graphs of 10 earlier steps at its end
    assert len(kept) == 1 and kept[0].status == "warn"
    assert "graphs of up to 10 earlier steps" in kept[0].value and "loss.item()" in kept[0].expected


def test_a_sum_never_reset_is_named_too():
    x, y = _data()
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    running = 0.0
    with doctor.watch(model, opt) as w:
        for step in range(14):
            idx = torch.arange(step * 16, step * 16 + 16) % len(x)
            opt.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            running = running + loss  # before backward: the same graph
            loss.backward()
            opt.step()
            w.step(loss)
    kept = [v for v in w.report().verdicts if v.check == KEPT]
    assert len(kept) == 1 and "graphs of up to 12 earlier steps" in kept[0].value


def test_adding_item_or_detach_passes():
    assert not _epochs(lambda total, loss: total + loss.item())
    assert not _epochs(lambda total, loss: total + loss.detach(), epochs=1)


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_losses_summed_inside_one_step_pass():
    """A multi-task sum and accumulated micro-batches (each divided by k, backward per micro-batch, the step's
    total summed as a tensor) hold only the current step's graphs."""
    x, y = _data()
    trunk, heads = nn.Linear(10, 16), nn.ModuleList([nn.Linear(16, 2), nn.Linear(16, 2)])
    model = nn.ModuleDict({"trunk": trunk, "heads": heads})
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    k = 3
    with doctor.watch(trunk, opt) as w:
        for step in range(12):
            opt.zero_grad()
            step_loss = 0
            for part in torch.arange(step * 24, step * 24 + 24).chunk(k):
                h = F.relu(trunk(x[part]))
                loss = F.cross_entropy(heads[0](h), y[part]) + F.cross_entropy(heads[1](h), 1 - y[part])
                loss = loss / k
                loss.backward()
                step_loss += loss
            opt.step()
            w.step(step_loss)
    assert not [v for v in w.report().verdicts if v.check == KEPT]


def test_the_watch_keeps_none_of_the_loops_objects_alive():
    """The watch reads the loop's frames on observed steps without keeping a snapshot of their variables: the
    batches and losses of the observed steps are freed once the loop drops them."""
    x, y = _data()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches, losses = [], []
    with doctor.watch(model, opt) as w:
        for i in range(0, 160, 32):
            xb = x[i : i + 32].clone()
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), y[i : i + 32])
            loss.backward()
            opt.step()
            w.step(loss)
            batches.append(weakref.ref(xb))
            losses.append(weakref.ref(loss))
        del xb, loss
        assert [r() for r in batches[1:] + losses] == [None] * 9  # the first batch is read again at the report
