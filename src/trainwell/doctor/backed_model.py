"""For ``trainwell watch``: the model a script's ``backward()`` reached, for the loops its optimizers' steps do not
lead to.

``trainwell watch`` finds a loop's model from the optimizers that step (:mod:`~trainwell.doctor.script_model`).
Two loop bugs leave it nothing to find there, though the explicit watch, given the model, names them:

- **the optimizer built on a copy of the model** (``SGD(copy.deepcopy(model).parameters())``, or a model
  re-created after its optimizer): the optimizer steps tensors no live module holds. The model is then the one the
  script called whose backward filled its gradients and whose parameters have the shapes of the optimizer's
  tensors (:func:`backed_model` with ``shapes``): watched with that optimizer, ``loop: optimizer holds the
  parameters`` names the tensors that are not its own.
- **``optimizer.step()`` forgotten**: no optimizer ever steps. :class:`UnsteppedLoop` counts the ``backward()``
  passes while no optimizer has stepped, each after a ``zero_grad()`` (of an optimizer or a module): a loop's
  iterations, where passes with none between them are micro-batches accumulated before a first step. After
  :data:`BACKWARDS` of them on one model in training mode, whose parameters nothing updated meanwhile (a
  hand-written update, ``p -= lr * p.grad``, bumps their versions), and that an optimizer holds, that model and
  optimizer are the loop's: each ``backward()`` is then a step of the watch, and ``loop: optimizer.step() runs``
  names the step that never ran.
"""

from __future__ import annotations

from torch import nn
from torch.optim import Optimizer

from trainwell.doctor.caller_warnings import relay, see_through
from trainwell.doctor.script_model import alive

#: backward() passes on one model with no optimizer step before the loop is read as one that never steps
BACKWARDS = 3


def _trainable(module: nn.Module) -> list:
    return [p for p in module.parameters() if p.requires_grad]


def backed_model(called: list[nn.Module], shapes: list[tuple] | None = None) -> nn.Module | None:
    """Of the modules the script ``called`` outermost, the largest in training mode whose trainable parameters a
    backward reached (a ``.grad`` on one of them); with ``shapes`` (the shapes of the tensors an optimizer holds),
    only one whose trainable parameters have those shapes, one for one."""
    found = []
    for m in called:
        params = _trainable(m)
        if not m.training or not params or all(p.grad is None for p in params):
            continue
        if shapes is not None and sorted(tuple(p.shape) for p in params) != sorted(shapes):
            continue
        found.append(m)
    return max(found, key=lambda m: sum(1 for _ in m.modules())) if found else None


def _versions(module: nn.Module) -> int:
    """The sum of its parameters' version counters (each in-place update bumps its tensor's)."""
    return sum(p._version for p in module.parameters())


class UnsteppedLoop:
    """The ``backward()`` passes of a script before any optimizer step: :meth:`backed` after each."""

    def __init__(self) -> None:
        self.passes = 0  # the passes that came after a zero_grad()
        self.cleared = False  # a zero_grad() since the latest pass
        self._first: tuple[nn.Module, int] | None = None  # the model of the first pass, and its versions then
        self.given_up = False

    def zeroed(self) -> None:
        """A ``zero_grad()`` call."""
        self.cleared = True

    def backed(self, called: list[nn.Module]) -> tuple[nn.Module, list] | None:
        """After a pass (``called``: the modules called outermost so far): the loop's model and the optimizers
        holding its parameters, once :data:`BACKWARDS` passes after a ``zero_grad()`` each reached that model with
        its parameters unchanged; else None (for good, when the passes reach another model, its parameters
        changed, or no optimizer holds them)."""
        model = None if self.given_up else backed_model(called)
        cleared, self.cleared = self.cleared, False
        if model is None or not cleared:
            return None
        self.passes += 1
        if self._first is None:
            self._first = (model, _versions(model))
        if self._first[0] is not model or self._first[1] != _versions(model):
            self.given_up = True
            return None
        if self.passes < BACKWARDS:
            return None
        held = {id(p) for p in model.parameters()}
        optimizers = [o for o in alive(Optimizer) if any(id(p) in held for g in o.param_groups for p in g["params"])]
        self.given_up = True  # read once
        return (model, optimizers) if optimizers else None


def zero_grads_read(loop: UnsteppedLoop):
    """A wrapper for ``zero_grad`` (an optimizer's, a module's) that tells ``loop`` of each call."""
    def wrap(original):
        @see_through
        def read(owner, *args, **kwargs):
            loop.zeroed()
            return relay(original, owner, *args, **kwargs)
        return read
    return wrap


__all__ = ["BACKWARDS", "UnsteppedLoop", "backed_model", "zero_grads_read"]
