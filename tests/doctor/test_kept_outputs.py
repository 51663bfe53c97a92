"""A loop that keeps the model's outputs with their graphs (``all_preds.append(out)`` for an epoch's accuracy, a
loss computed again for logging ``epoch_loss += criterion(out, y)``) keeps each step's autograd graph until the epoch
ends: the memory grows with the steps. Detached outputs, ``argmax``, outputs kept for the current step or the latest
one or two, accumulated micro-batches and a recurrent state detached between steps keep no earlier step's graph. A
bounded window of loss tensors (``deque(maxlen=10)``) is told as info: its memory does not grow."""

import collections

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

OUTPUTS = "loop: outputs kept with their graphs"
LOSSES = "loop: loss tensors kept"


def _data(n: int = 192):
    torch.manual_seed(0)
    x = torch.randn(n, 10)
    return x, (x[:, 0] + x[:, 1] > 0).long()


def _model():
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))


def _epochs(keep, epochs: int = 2, batch: int = 16):
    """Two epochs of 12 steps; ``keep(store, out, loss, yb)`` is what the loop keeps of each step in ``store``,
    a dict emptied at each epoch's end after the epoch's accuracy is computed from ``store["preds"]``."""
    x, y = _data()
    model = _model()
    criterion = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt) as w:
        for _ in range(epochs):
            model.train()
            store = {"preds": [], "labels": [], "epoch_loss": 0.0}
            for i in range(0, len(x), batch):
                xb, yb = x[i : i + batch], y[i : i + batch]
                opt.zero_grad()
                outputs = model(xb)
                loss = criterion(outputs, yb)
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
                store["labels"].append(yb)
                keep(store, outputs, loss, yb, criterion)
            if store["preds"]:
                preds = torch.cat(store["preds"])
                preds = preds if preds.dim() == 1 else preds.argmax(1)
                accuracy = (preds == torch.cat(store["labels"])).float().mean()
                assert 0 <= float(accuracy) <= 1
    return {v.check: v for v in w.report().verdicts if v.check in (OUTPUTS, LOSSES)}


def test_outputs_appended_with_their_graphs_are_named():
    found = _epochs(lambda s, out, loss, yb, crit: s["preds"].append(out))
    assert set(found) == {OUTPUTS} and found[OUTPUTS].status == "warn"
    assert "outputs of up to 10 earlier training steps" in found[OUTPUTS].value  # 12 steps, the latest 2 not read
    assert "out.detach()" in found[OUTPUTS].advice


def test_a_loss_computed_again_for_logging_after_backward_is_named():
    """``loss.backward(); epoch_loss += criterion(out, y)``: the second loss is a tensor whose graph reaches every
    step's output; the loss given to ``w.step`` is freed."""
    def relog(s, out, loss, yb, crit):
        s["epoch_loss"] += crit(out, yb)
    found = _epochs(relog)
    assert set(found) == {OUTPUTS} and found[OUTPUTS].status == "warn"
    assert "the outputs gone" in found[OUTPUTS].value and "criterion(out, y)" in found[OUTPUTS].advice


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_detached_outputs_argmax_and_cpu_copies_pass():
    assert not _epochs(lambda s, out, loss, yb, crit: s["preds"].append(out.detach()))
    assert not _epochs(lambda s, out, loss, yb, crit: s["preds"].append(out.argmax(1)))
    assert not _epochs(lambda s, out, loss, yb, crit: s["preds"].append(out.detach().cpu()))
    assert not _epochs(lambda s, out, loss, yb, crit: s.update(epoch_loss=s["epoch_loss"] + crit(out, yb).item()))


def test_the_latest_two_steps_outputs_kept_pass():
    assert not _epochs(lambda s, out, loss, yb, crit: s.update(previous=s.get("latest"), latest=out))


def test_loss_tensors_kept_are_named_as_losses_not_outputs():
    """A kept loss holds its step's output graph too: the cause named is the loss."""
    found = _epochs(lambda s, out, loss, yb, crit: s.setdefault("losses", []).append(loss))
    assert set(found) == {LOSSES}


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_outputs_of_accumulated_micro_batches_kept_within_the_step_pass():
    x, y = _data()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    k = 4
    with doctor.watch(model, opt) as w:
        for step in range(12):
            opt.zero_grad()
            step_outputs = []
            for part in torch.arange(step * 16, step * 16 + 16).chunk(k):
                out = model(x[part])
                (F.cross_entropy(out, y[part]) / k).backward()
                step_outputs.append(out)  # the step's outputs, dropped when the next step starts
            opt.step()
            step_loss = F.cross_entropy(torch.cat(step_outputs), y[step * 16 : step * 16 + 16])
            w.step(step_loss.item())
    assert not [v for v in w.report().verdicts if v.check in (OUTPUTS, LOSSES)]


class _Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.cell, self.head = nn.GRUCell(10, 16), nn.Linear(16, 10)

    def forward(self, x, h):
        h = self.cell(x, h)
        return self.head(h), h


def test_a_recurrent_state_and_output_detached_between_steps_pass():
    """Truncated backpropagation: the hidden state and the output fed back as the next input are detached."""
    torch.manual_seed(0)
    series = torch.randn(26, 8, 10).cumsum(0) * 0.1
    model = _Recurrent()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    h, x = torch.zeros(8, 16), series[0]
    with doctor.watch(model, opt) as w:
        for t in range(1, 25):
            opt.zero_grad()
            out, h = model(x, h)
            loss = F.mse_loss(out, series[t])
            loss.backward()
            opt.step()
            w.step(loss)
            h, x = h.detach(), out.detach()
    assert not [v for v in w.report().verdicts if v.check in (OUTPUTS, LOSSES)]


def _window(keep_outputs: bool):
    """36 steps of one loop keeping the latest 10 losses (or outputs) in a deque for a smoothed display."""
    x, y = _data(576)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    recent, shown = collections.deque(maxlen=10), []
    with doctor.watch(model, opt) as w:
        for i in range(0, len(x), 16):
            opt.zero_grad()
            out = model(x[i : i + 16])
            loss = F.cross_entropy(out, y[i : i + 16])
            loss.backward()
            opt.step()
            w.step(loss)
            recent.append(out if keep_outputs else loss)
            shown.append(torch.stack(list(recent)).mean().item())  # a smoothed value for a progress bar
    return {v.check: v for v in w.report().verdicts if v.check in (OUTPUTS, LOSSES)}


def test_a_bounded_window_of_loss_tensors_is_info_not_a_warning():
    found = _window(keep_outputs=False)
    assert set(found) == {LOSSES} and found[LOSSES].status == "info"
    assert "does not grow" in found[LOSSES].advice


def test_a_bounded_window_of_outputs_is_info_not_a_warning():
    found = _window(keep_outputs=True)
    assert set(found) == {OUTPUTS} and found[OUTPUTS].status == "info"
    assert "bounded" in found[OUTPUTS].advice
