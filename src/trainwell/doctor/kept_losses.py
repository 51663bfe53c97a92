"""Loss tensors the loop keeps, and the graphs they hold. ``losses.append(loss)`` (instead of ``loss.item()``)
holds on to each step's loss and, through its ``grad_fn``, to the step's autograd graph; so does a running sum
``total_loss += loss`` (or ``total = total + loss``): the sum is a tensor whose graph reaches every step's loss
until it is reset (at the epoch's end, or never). Either way the memory grows with every step.

``w.step(loss)`` keeps only a weak reference to each loss that has a graph, and marks its ``grad_fn``
(:mod:`~trainwell.doctor.graph_markers`) to tell whether anything still holds the step's graph. On each call
the graphs of earlier steps still alive are counted (the doctor itself stores floats and detached copies), until
``_READ`` graphs were marked: a few microseconds a call. At the report, losses of earlier steps still alive were
kept by the loop; graphs of many earlier steps alive at once, their loss tensors gone, were kept by a tensor
computed from them (a running sum). Graphs that die one by one while as many stay alive are a bounded window of the
latest steps (``collections.deque(maxlen=10)`` of losses): the memory does not grow, so that is told as info."""

from __future__ import annotations

import weakref

import torch

from trainwell.doctor.freed_together import FreedTogether
from trainwell.doctor.graph_markers import mark
from trainwell.doctor.verdict import Verdict

#: the losses read: enough to tell a list that grows from a variable that holds the latest one
_READ = 64
#: the latest steps, whose loss a loop may still hold in a variable (``loss``, ``last_loss``)
_RECENT = 2
#: fewer earlier losses (or graphs alive at once) than this are not read
_MIN_EARLIER = 8
#: the key of the marker in a loss's ``grad_fn.metadata``
_KEY = "trainwell.doctor.kept_losses"


def bounded_window(slid: int, least: int) -> bool:
    """Whether the graphs kept were a window of the latest steps: on ``least`` or more counts, earlier graphs
    died while ``least`` or more stayed alive (a list dropped at an epoch's end frees them all at once)."""
    return slid >= least


class KeptLosses:
    """Weak references to the loss tensors given to ``w.step`` and to their graphs, the first ``_READ`` of them with
    a graph; the most earlier graphs alive at once."""

    def __init__(self) -> None:
        self._refs: list[weakref.ref] = []
        self._calls = 0
        self._graphs: dict[int, weakref.ref] = {}  # call index -> its loss's graph, while alive
        self._tensors: dict[int, weakref.ref] = {}  # call index -> its loss tensor
        self._marked = self._last_marked = 0
        self.peak = 0  # the most graphs of earlier steps (not the latest _RECENT) alive at once
        self.peak_tensors = 0  # of them, those whose loss tensor was alive too
        self.slid = 0  # counts at which earlier graphs died while as many stayed alive: a bounded window
        self.together = FreedTogether()  # the graphs of whole short epochs freed at once

    def record(self, loss: object) -> None:
        self._calls += 1
        if not isinstance(loss, torch.Tensor) or loss.grad_fn is None:
            return
        ref = weakref.ref(loss) if len(self._refs) < _READ or self._marked < _READ else None
        if len(self._refs) < _READ:
            self._refs.append(ref)
        if self._marked < _READ:
            marker = mark(loss.grad_fn, _KEY)
            if marker is not None:
                self._marked += 1
                self._graphs[self._calls], self._tensors[self._calls] = marker, ref
                self._last_marked = self._calls
        if self._graphs and self._calls <= self._last_marked + _RECENT:  # later, the count can only fall
            self._count()

    def graph_alive(self, k: int) -> bool:
        """Whether the graph of the loss given to the ``k``-th call (counted from 1) is still alive."""
        ref = self._graphs.get(k)
        return ref is not None and ref() is not None

    def _count(self) -> None:
        """Drop the graphs that died; count the earlier ones still alive."""
        dead = [k for k, ref in self._graphs.items() if ref() is None]
        for k in dead:
            del self._graphs[k], self._tensors[k]
        earlier = [k for k in self._graphs if k <= self._calls - _RECENT]
        self.together.counted({k: self._tensors[k]() is not None for k in self._graphs})
        if dead and len(earlier) >= _MIN_EARLIER:
            self.slid += 1
        if len(earlier) > self.peak:
            self.peak = len(earlier)
            self.peak_tensors = sum(self._tensors[k]() is not None for k in earlier)

    def verdict(self) -> Verdict | None:
        """A warning when nearly every earlier loss is still alive, or when the graphs of many earlier steps were
        alive at once; None when too few steps were read."""
        return self._tensors_kept() or self._graphs_kept()

    def _tensors_kept(self) -> Verdict | None:
        earlier = self._refs[:-_RECENT] if self._calls - len(self._refs) < _RECENT else self._refs
        if len(earlier) < _MIN_EARLIER:
            return None
        alive = sum(ref() is not None for ref in earlier)
        if alive < 0.9 * len(earlier):
            return None
        return Verdict("loop: loss tensors kept", "warn",
                       f"{alive} of {len(earlier)} earlier loss tensors given to w.step are still alive, each with its "
                       "step's autograd graph", "loss.item() kept, not loss",
                       "the loop stores the loss tensors (losses.append(loss), a dict of them): each keeps its step's "
                       "graph and the memory grows every step; store loss.item() (or loss.detach())")

    def _graphs_kept(self) -> Verdict | None:
        if self.peak < _MIN_EARLIER:
            return self._epochs_kept()
        if bounded_window(self.slid, _MIN_EARLIER):
            what = "loss tensors" if self.peak_tensors >= 0.9 * self.peak else "losses' autograd graphs"
            return Verdict("loop: loss tensors kept", "info",
                           f"the {what} of {self.peak} earlier steps stay alive at a time, older ones freed one by one",
                           "loss.item() kept, not loss",
                           "the loop keeps a bounded window of loss tensors (a deque(maxlen=...)): each holds its "
                           "step's graph, but the memory does not grow; store loss.item() to free them")
        if self.peak_tensors >= 0.9 * self.peak:  # the tensors themselves, dropped later (a list per epoch)
            return Verdict("loop: loss tensors kept", "warn",
                           f"the loss tensors of up to {self.peak} earlier steps were alive at once, each with its "
                           "step's autograd graph", "loss.item() kept, not loss",
                           "the loop stores the loss tensors for a while (a list of them per epoch): each keeps its "
                           "step's graph and the memory grows with the steps; store loss.item() (or loss.detach())")
        return Verdict("loop: loss tensors kept", "warn",
                       f"the autograd graphs of up to {self.peak} earlier steps were alive at once, their loss tensors "
                       "gone: a tensor computed from the losses holds them", "total_loss += loss.item()",
                       "a running sum of loss tensors (total_loss += loss, total = total + loss) is itself a tensor "
                       "whose graph reaches every step's loss, so the memory grows every step until it is reset; "
                       "add loss.item() (or loss.detach())")

    def _epochs_kept(self) -> Verdict | None:
        """A warning when the graphs of every step of short epochs were kept and freed together at each epoch's end
        (:mod:`~trainwell.doctor.freed_together`); None otherwise."""
        held = self.together
        if not held.named():
            return None
        if held.of_tensors():
            return Verdict("loop: loss tensors kept", "warn",
                           "the loss tensors were kept with their autograd graphs through each epoch and freed "
                           f"together at its end ({held.drops} times, up to {held.most} steps' at once)",
                           "loss.item() kept, not loss",
                           "the loop stores each epoch's loss tensors (a list of them per epoch): each keeps its "
                           "step's graph and the memory grows with the epoch's steps, a few here, as many as the data "
                           "set has batches on a larger one; store loss.item() (or loss.detach())")
        return Verdict("loop: loss tensors kept", "warn",
                       "the losses' autograd graphs were kept through each epoch and freed together at its end "
                       f"({held.drops} times, up to {held.most} steps' at once), their loss tensors gone: a tensor "
                       "computed from the losses holds them", "total_loss += loss.item()",
                       "a running sum of loss tensors reset each epoch (total_loss += loss) is itself a tensor whose "
                       "graph reaches every step's loss of the epoch, so the memory grows with the epoch's steps; "
                       "add loss.item() (or loss.detach())")
