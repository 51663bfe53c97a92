"""The ``loop: plateau metric`` verdict: a ``ReduceLROnPlateau`` stepped on a value that moves the wrong way for
its ``mode``. An accuracy given to ``mode='min'`` (the default) rises as the model learns, so the scheduler sees
no improvement after its first call and cuts the rate every ``patience + 1`` epochs while training goes well;
a loss given to ``mode='max'`` does the same as it falls. Read from every ``step(metrics)`` call of a plateau
scheduler of the watched optimizer: the value never better than its first in the scheduler's mode, no better at
the end than at mid-run (a validation loss: below its first throughout), while the training loss fell and the rate
was cut. A validation loss also given to ``w.validate`` is the value a ``mode='min'`` scheduler should read, and is
left there to the validation verdicts; under ``mode='max'`` (a setting copied from an accuracy-driven recipe) its
every improvement reads as a plateau.

Example:
    >>> import torch
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    >>> plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    >>> reader = PlateauMetrics(); reader.start()
    >>> for accuracy in (0.5, 0.6, 0.7, 0.8, 0.9): plateau.step(accuracy)
    >>> reader.stop()
    >>> reader.verdict(opt, [2.0] * 10 + [1.0] * 10, []).status
    'warn'
"""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import ReduceLROnPlateau

from trainwell.doctor.method_readers import ReadsCalls
from trainwell.doctor.verdict import Verdict

#: calls of step(metrics) needed to read a direction
LEAST_CALLS = 4
#: the training loss's last quarter at most this share of its first quarter's: it fell
FELL = 0.8

NAME = "loop: plateau metric"


class PlateauMetrics(ReadsCalls):
    """Keeps, for each ``ReduceLROnPlateau`` stepped between :meth:`start` and :meth:`stop`, the value of every
    call and its optimizer's first rate before the call."""

    patched = (ReduceLROnPlateau, "step")

    def __init__(self) -> None:
        self.calls: dict[int, tuple[ReduceLROnPlateau, list[float], list[float]]] = {}

    def saw(self, scheduler: ReduceLROnPlateau, metrics=None, *args, **kwargs) -> None:
        try:
            value = float(metrics)
        except (TypeError, ValueError, RuntimeError):
            return
        entry = self.calls.setdefault(id(scheduler), (scheduler, [], []))
        entry[1].append(value)
        entry[2].append(float(scheduler.optimizer.param_groups[0]["lr"]))

    def verdict(self, optimizer, losses: list[float], val_losses: list[float]) -> Verdict | None:
        """A warning for the first plateau scheduler of ``optimizer`` (or of one of a list of them) whose values
        went the wrong way for its mode while ``losses`` (the training loss of every step) fell and the rate was
        cut; None when there is none."""
        mine = optimizer if isinstance(optimizer, list | tuple) else [optimizer]
        for scheduler, values, rates in self.calls.values():
            if not any(scheduler.optimizer is o for o in mine):
                continue
            found = _wrong_way(scheduler, values, rates, losses, val_losses)
            if found is not None:
                return found
        return None


def _wrong_way(scheduler: ReduceLROnPlateau, values: list[float], rates: list[float], losses: list[float],
               val_losses: list[float]) -> Verdict | None:
    rates = rates + [float(scheduler.optimizer.param_groups[0]["lr"])]
    if len(values) < LEAST_CALLS or not all(math.isfinite(v) for v in values) or len(losses) < 8:
        return None
    validation = any(math.isclose(v, u, rel_tol=1e-9) for v in values for u in val_losses)
    if validation and scheduler.mode == "min":
        return None  # the validation loss: the value it should read
    worse = 1.0 if scheduler.mode == "min" else -1.0
    first, mid, last = values[0], values[len(values) // 2], values[-1]
    never_better = all(worse * (v - first) > 0 for v in values[1:])
    quarter = max(len(losses) // 4, 1)
    head, tail = sum(losses[:quarter]) / quarter, sum(losses[-quarter:]) / quarter
    cuts = sum(b < a for a, b in zip(rates, rates[1:], strict=False))
    # a validation loss is known to be a loss: below its first value throughout is enough (it may bounce after mid-run)
    if not (never_better and (validation or worse * (last - mid) >= 0) and tail < FELL * head and cuts):
        return None
    moved = "rose" if worse > 0 else "fell"
    what = "the validation loss, which" if validation else "a value that"
    return Verdict(NAME, "warn",
                   f"ReduceLROnPlateau(mode='{scheduler.mode}') stepped on {what} {moved} from its first "
                   f"call on ({first:.3g} -> {last:.3g} over {len(values)} calls) while the training loss fell "
                   f"({head:.3g} -> {tail:.3g}): it saw no improvement and cut the rate {cuts} times "
                   f"({rates[0]:.3g} -> {rates[-1]:.3g})",
                   f"a value that improves in mode '{scheduler.mode}' as the model learns",
                   "a loss falls as the model learns: ReduceLROnPlateau(mode='min') (the default) for a loss, "
                   "'max' only for a metric that should rise (an accuracy)" if validation else
                   "an accuracy given to mode='min' (or a loss to mode='max')? Step it on the validation loss, or "
                   "set mode='max' for a metric that should rise")
