"""A learning-rate scheduler left on an optimizer the loop no longer steps: the optimizer created again after the
scheduler was built on the first one (a notebook cell that builds the optimizer run again, an optimizer rebuilt to
load a checkpoint's state)::

    optimizer = SGD(model.parameters(), lr=0.1)
    scheduler = StepLR(optimizer, step_size=30)
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)   # built again
    ... optimizer.step(); ... scheduler.step()                   # the schedule moves the first one's rate

torch raises nothing (it warns that ``lr_scheduler.step()`` ran before ``optimizer.step()``, on the first one):
the schedule runs on the first optimizer's param groups, and the optimizer that trains keeps its rate for the
whole run.

Read from every ``LRScheduler.step`` call while watched (:class:`SchedulerSteps`; ``ReduceLROnPlateau``, which
has its own ``step``, is read by :mod:`~trainwell.doctor.plateau_metric`): a scheduler stepped
:data:`LEAST_STEPS` times or more whose optimizer is none of the watched ones, holds parameters of the watched
model, and never stepped (torch marks an optimizer whose ``step`` a scheduler's wrapper saw run).

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> first = torch.optim.SGD([w], lr=0.1)
    >>> schedule = torch.optim.lr_scheduler.StepLR(first, step_size=1)
    >>> second = torch.optim.SGD([w], lr=0.1)
    >>> reader = SchedulerSteps()
    >>> reader.start()
    >>> import warnings
    >>> with warnings.catch_warnings():  # torch: lr_scheduler.step() before optimizer.step(), on the first one
    ...     warnings.simplefilter("ignore")
    ...     for _ in range(2):
    ...         second.step(); schedule.step()
    >>> reader.stop()
    >>> reader.verdict([second], [w], [0.1, 0.1]).status
    'warn'
"""

from __future__ import annotations

from torch.optim.lr_scheduler import LRScheduler

from trainwell.doctor.method_readers import ReadsCalls
from trainwell.doctor.verdict import Verdict

NAME = "loop: learning rate applied"
#: the scheduler's steps while watched before it is read
LEAST_STEPS = 2
#: schedulers kept
KEPT = 16


class SchedulerSteps(ReadsCalls):
    """The schedulers stepped while watched, with their step counts."""

    patched = (LRScheduler, "step")

    def __init__(self) -> None:
        self.stepped: dict[int, list] = {}  # id -> [the scheduler, its steps while watched]

    def saw(self, scheduler, *args, **kwargs) -> None:
        entry = self.stepped.get(id(scheduler))
        if entry is None and len(self.stepped) < KEPT:
            entry = self.stepped[id(scheduler)] = [scheduler, 0]
        if entry is not None:
            entry[1] += 1

    def verdict(self, optimizers: list, parameters, lrs: list[float]) -> Verdict | None:
        """A warn for a scheduler stepped while watched on an optimizer that is none of ``optimizers`` (the
        watched ones), holds some of ``parameters`` (the watched model's), and never stepped; None otherwise
        (``lrs``: the rate the watched optimizer applied at each step)."""
        mine, held = {id(o) for o in optimizers}, {id(p) for p in parameters}
        for scheduler, count in self.stepped.values():
            other = getattr(scheduler, "optimizer", None)
            if count < LEAST_STEPS or other is None or id(other) in mine or getattr(other, "_opt_called", False):
                continue
            if not any(id(p) in held for g in other.param_groups for p in g["params"]):
                continue
            kept = f": the rate stayed at {lrs[0]:.3g}" if lrs and max(lrs) == min(lrs) else ""
            return Verdict(NAME, "warn", f"{type(scheduler).__name__} was stepped {count} times on an optimizer that "
                           "holds the model's parameters but never stepped, not on the one that trains them"
                           f"{kept} (the optimizer created again after the scheduler was built?)",
                           "the scheduler on the optimizer that steps",
                           "build the scheduler on the optimizer the loop steps, after the last time that optimizer "
                           "is created (re-running the cell that builds it leaves the scheduler on the old one)")
        return None


__all__ = ["SchedulerSteps"]
