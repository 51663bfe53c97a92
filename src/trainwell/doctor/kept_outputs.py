"""The model's outputs the loop keeps, and the graphs they hold. ``all_preds.append(outputs)`` (for an epoch's
accuracy or AUC) without ``.detach()`` holds on to each step's output and, through its ``grad_fn``, to the step's
autograd graph; so does a tensor computed from the outputs and kept (a loss computed again for logging,
``epoch_loss += criterion(out, y)``; ``preds.append(out.softmax(1))``). The memory grows with every step until the
list (or sum) is dropped.

The watch's forward hook marks the ``grad_fn`` of the output of each training forward (with gradients, in train
mode; :mod:`~trainwell.doctor.graph_markers`) and keeps a weak reference to the output, the first ``_READ``
forwards: a few microseconds each. On each ``w.step`` the graphs of earlier steps' outputs still alive are counted,
leaving out the steps whose loss given to ``w.step`` is alive too (a kept loss holds its output's graph: that is
:mod:`~trainwell.doctor.kept_losses`'s reading). ``out.detach()``, ``out.argmax(1)``, an output kept for the latest
step or two, and several forwards inside one step (accumulated micro-batches) keep no earlier step's graph."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch

from trainwell.doctor.freed_together import FreedTogether
from trainwell.doctor.graph_markers import mark
from trainwell.doctor.kept_losses import bounded_window
from trainwell.doctor.verdict import Verdict

#: the training forwards whose output is read
_READ = 64
#: the latest steps, whose outputs a loop may still hold in a variable (``out``, ``prev_out``)
_RECENT = 2
#: fewer earlier steps with their outputs' graphs alive at once than this are not read
_MIN_EARLIER = 8
#: the key of the marker in an output's ``grad_fn.metadata``
_KEY = "trainwell.doctor.kept_outputs"

_CHECK = "loop: outputs kept with their graphs"


class KeptOutputs:
    """Markers on the graphs of the first ``_READ`` training forwards' outputs, and weak references to the
    outputs; the most earlier steps whose outputs' graphs were alive at once."""

    def __init__(self) -> None:
        self._calls = 0  # w.step calls so far: the forwards before the next one belong to step _calls + 1
        self._graphs: dict[int, tuple[int, weakref.ref, weakref.ref]] = {}  # forward -> (step, graph, output)
        self._marked = self._last_step = 0
        self.peak = 0  # the most earlier steps (not the latest _RECENT) with an output's graph alive at once
        self.peak_outputs = 0  # of them, those whose output tensor was alive too
        self.slid = 0  # counts at which earlier graphs died while as many stayed alive: a bounded window
        self.together = FreedTogether()  # the graphs of whole short epochs freed at once

    def forwarded(self, out: object) -> None:
        """A training forward's output (its class scores): its graph marked, the first ``_READ`` of them."""
        if self._marked >= _READ or not isinstance(out, torch.Tensor) or out.grad_fn is None:
            return
        marker = mark(out.grad_fn, _KEY)
        if marker is not None:
            self._marked += 1
            self._graphs[self._marked] = (self._calls + 1, marker, weakref.ref(out))
            self._last_step = self._calls + 1

    def stepped(self, loss_graph_alive: Callable[[int], bool]) -> None:
        """One ``w.step`` call: the earlier steps whose outputs' graphs are still alive, counted while any were
        marked lately; ``loss_graph_alive(k)`` tells whether step ``k``'s loss (which holds the graph) is alive."""
        self._calls += 1
        if not self._graphs or self._calls > self._last_step + _RECENT:  # later, the count can only fall
            return
        dead = [f for f, (_, graph, _) in self._graphs.items() if graph() is None]
        for f in dead:
            del self._graphs[f]
        earlier, alive = {}, {}  # step -> whether one of its outputs is alive itself (earlier steps; all steps)
        for step, _, output in self._graphs.values():
            if not loss_graph_alive(step):
                alive[step] = alive.get(step, False) or output() is not None
                if step <= self._calls - _RECENT:
                    earlier[step] = alive[step]
        self.together.counted(alive)
        if dead and len(earlier) >= _MIN_EARLIER:
            self.slid += 1
        if len(earlier) > self.peak:
            self.peak, self.peak_outputs = len(earlier), sum(earlier.values())

    def verdict(self) -> Verdict | None:
        """A warning when the outputs' graphs of many earlier steps were alive at once (info when they were a
        bounded window of the latest steps); None otherwise."""
        if self.peak < _MIN_EARLIER:
            return self._epochs_kept()
        status, grows = ("info", "the memory stays bounded (a window of the latest steps) but holds them") \
            if bounded_window(self.slid, _MIN_EARLIER) else ("warn", "the memory grows with the steps")
        if self.peak_outputs >= 0.9 * self.peak:
            return Verdict(_CHECK, status,
                           f"the model's outputs of up to {self.peak} earlier training steps were alive at once, each "
                           "with its step's autograd graph", "out.detach() kept, not out",
                           "the loop stores the model's outputs (all_preds.append(out), for an epoch's accuracy or "
                           f"AUC) with their graphs: {grows}; store out.detach() (or out.detach().cpu())")
        return Verdict(_CHECK, status,
                       f"the autograd graphs of the outputs of up to {self.peak} earlier training steps were alive at "
                       "once, the outputs gone: a tensor computed from them holds them", "detached before kept",
                       "the loop keeps a tensor computed from the outputs (a loss computed again for logging, "
                       f"epoch_loss += criterion(out, y); preds.append(out.softmax(1))): {grows}; compute it from "
                       "out.detach(), or add .item()")

    def _epochs_kept(self) -> Verdict | None:
        """A warning when the outputs' graphs of every step of short epochs were kept and freed together at each
        epoch's end (:mod:`~trainwell.doctor.freed_together`); None otherwise."""
        held = self.together
        if not held.named():
            return None
        if held.of_tensors():
            return Verdict(_CHECK, "warn",
                           "the model's outputs were kept with their autograd graphs through each epoch and freed "
                           f"together at its end ({held.drops} times, up to {held.most} steps' at once)",
                           "out.detach() kept, not out",
                           "the loop stores each epoch's outputs (all_preds.append(out), for its accuracy or AUC) "
                           "with their graphs: the memory grows with the epoch's steps, a few here, as many as the "
                           "data set has batches on a larger one; store out.detach() (or out.detach().cpu())")
        return Verdict(_CHECK, "warn",
                       "the autograd graphs of the model's outputs were kept through each epoch and freed together at "
                       f"its end ({held.drops} times, up to {held.most} steps' at once), the outputs gone: a tensor "
                       "computed from them holds them", "detached before kept",
                       "the loop keeps a tensor computed from each epoch's outputs (a loss computed again for "
                       "logging, epoch_loss += criterion(out, y)): the memory grows with the epoch's steps; compute "
                       "it from out.detach(), or add .item()")
