"""For ``trainwell watch``: the learning rates each optimizer was given, read when it was built (or when a state
dict was loaded into it).

The explicit watch reads a hand-written warm-up stuck at its first step (:mod:`~trainwell.doctor.stuck_warmup`)
against the rate each param group had when ``doctor.watch`` was called, before the loop: the rate the optimizer was
built with. ``trainwell watch`` knows the optimizer only once it has stepped, when the loop has already set the
stuck rate; so the rates are read at ``Optimizer.__init__``'s end (every torch optimizer calls it) and after
``Optimizer.load_state_dict`` (a resumed run's rates are the checkpoint's), for the watch that begins on the
optimizer to start from.

Example:
    >>> import torch
    >>> rates = BuiltRates()
    >>> rates.start()
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    >>> rates.stop()
    >>> opt.param_groups[0]["lr"] = 0.001
    >>> rates.of(opt)
    [0.1]
"""

from __future__ import annotations

import math
import weakref

from torch.optim import Optimizer

from trainwell.doctor.caller_warnings import relay, see_through


def _rates(optimizer) -> list[float]:
    out = []
    for g in getattr(optimizer, "param_groups", ()):
        try:
            out.append(float(g.get("lr")))
        except (TypeError, ValueError, RuntimeError):
            out.append(math.nan)
    return out


class BuiltRates:
    """Between :meth:`start` and :meth:`stop`: each optimizer's param group rates at its construction's end and
    after each ``load_state_dict``, kept by a weak reference to it."""

    def __init__(self) -> None:
        self._rates: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._undo: list = []

    def start(self) -> None:
        for name in ("__init__", "load_state_dict"):
            original = getattr(Optimizer, name)
            setattr(Optimizer, name, self._reading(original))
            self._undo.append((name, original))

    def stop(self) -> None:
        for name, original in reversed(self._undo):
            setattr(Optimizer, name, original)
        self._undo = []

    def _reading(self, original):
        rates = self._rates

        @see_through
        def read(optimizer, *args, **kwargs):
            out = relay(original, optimizer, *args, **kwargs)
            try:
                rates[optimizer] = _rates(optimizer)
            except TypeError:  # not weakly referable
                pass
            return out
        return read

    def of(self, optimizer) -> list[float] | None:
        """The rates ``optimizer`` was given (None: built before :meth:`start`)."""
        try:
            return self._rates.get(optimizer)
        except TypeError:
            return None


__all__ = ["BuiltRates"]
