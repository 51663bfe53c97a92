"""For ``trainwell watch``: the learning-rate schedulers a script creates, recorded at their construction.

The watch's reading of a scheduler created and never stepped (:mod:`~trainwell.doctor.unstepped_schedulers`)
finds the schedulers alive when the report is written: those holding the optimizer (``gc.get_referrers``), and a
``ReduceLROnPlateau`` held by the code asking for the report. A script run by ``trainwell watch`` gets its report
at its end, when a scheduler that was a local of its training function (``def train(): ... sched = StepLR(opt,
10)``) is gone with the function's frame, while the watch still holds the optimizer. So every scheduler's
construction (``LRScheduler.__init__``, ``ReduceLROnPlateau.__init__``) is read while the script runs, and the
latest one created on each optimizer is held: what the training function held at its end, as the explicit watch
finds it. An earlier one replaced by a later one on the same optimizer (a scheduler built again every epoch, a
schedule swapped for a fine-tuning stage) is held weakly: read only while the script holds it too.

Example:
    >>> import torch
    >>> def train(records):
    ...     opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ...     torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    ...     return opt
    >>> records = SchedulerRecords()
    >>> records.start()
    >>> opt = train(records)
    >>> records.stop()
    >>> [type(s).__name__ for s in records.on([opt])]
    ['ReduceLROnPlateau']
"""

from __future__ import annotations

import weakref

from torch.optim.lr_scheduler import ReduceLROnPlateau

from trainwell.doctor.scheduler_inits import SchedulerInits

#: schedulers kept weakly at most (each a reference)
KEPT = 4096


class SchedulerRecords(SchedulerInits):
    """The schedulers created between :meth:`start` and :meth:`stop`: the latest on each optimizer held, the
    others by weak references."""

    def __init__(self) -> None:
        super().__init__()
        self.latest: dict[int, tuple[weakref.ref, object]] = {}  # id(optimizer) -> (its reference, the scheduler)
        self.earlier: list[weakref.ref] = []

    def saw(self, scheduler, optimizer=None, *args, **kwargs) -> None:
        optimizer = kwargs.get("optimizer", optimizer)
        if optimizer is None or not hasattr(optimizer, "param_groups"):
            return
        held = self.latest.get(id(optimizer))
        if held is not None and held[0]() is optimizer and held[1] is not scheduler and len(self.earlier) < KEPT:
            self.earlier.append(weakref.ref(held[1]))
        self.latest[id(optimizer)] = (weakref.ref(optimizer), scheduler)

    def on(self, optimizers: list) -> list:
        """The recorded schedulers on one of ``optimizers`` that are held (the latest on each) or still alive."""
        mine = {id(o) for o in optimizers}
        found = [s for key, (ref, s) in self.latest.items() if key in mine and ref() is not None]
        found += [s for s in (r() for r in self.earlier) if s is not None and id(getattr(s, "optimizer", None))
                  in mine and not any(s is f for f in found)]
        return found

    def release(self, optimizers: list) -> None:
        """The loop of ``optimizers`` is reported: their schedulers are held weakly from now on (held, they would
        keep a finished loop's optimizer alive)."""
        for o in optimizers:
            held = self.latest.pop(id(o), None)
            if held is not None and len(self.earlier) < KEPT:
                self.earlier.append(weakref.ref(held[1]))

    def plateaus(self, optimizers: list) -> list[ReduceLROnPlateau]:
        """Of :meth:`on`, the ``ReduceLROnPlateau`` schedulers."""
        return [s for s in self.on(optimizers) if isinstance(s, ReduceLROnPlateau)]


__all__ = ["SchedulerRecords"]
