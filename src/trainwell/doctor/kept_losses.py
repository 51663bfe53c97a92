"""Loss tensors the loop keeps: ``losses.append(loss)`` (instead of ``loss.item()``) holds on to each step's loss
and, through its ``grad_fn``, to the step's autograd graph, so the memory grows with every step.

``w.step(loss)`` keeps only a weak reference to each loss that has a graph; at the report, losses of earlier steps
still alive were kept by the loop (the doctor itself stores floats)."""

from __future__ import annotations

import weakref

import torch

from trainwell.doctor.verdict import Verdict

#: the losses read: enough to tell a list that grows from a variable that holds the latest one
_READ = 64
#: the latest steps, whose loss a loop may still hold in a variable (``loss``, ``last_loss``)
_RECENT = 2
#: fewer earlier losses than this are not read
_MIN_EARLIER = 8


class KeptLosses:
    """Weak references to the loss tensors given to ``w.step``, the first ``_READ`` of them with a graph."""

    def __init__(self) -> None:
        self._refs: list[weakref.ref] = []
        self._calls = 0

    def record(self, loss: object) -> None:
        self._calls += 1
        if isinstance(loss, torch.Tensor) and loss.grad_fn is not None and len(self._refs) < _READ:
            self._refs.append(weakref.ref(loss))

    def verdict(self) -> Verdict | None:
        """A warning when nearly every earlier loss is still alive; None when too few steps were read."""
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
