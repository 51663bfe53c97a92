"""The functions of the ``LambdaLR`` schedulers stepped while watched, read for the largest factor each returns.
A function that returns the rate, ``lr * factor``, peaks at the optimizer's lr (0.1 or below); a factor peaks
near 1. The rates a watch sees alone cannot tell them apart when it ends inside a long warm-up: a factor of
``step / 320`` over 32 watched steps peaks at 0.1, as ``0.1 * step / 32`` does.

Example:
    >>> import torch
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    >>> schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 320))
    >>> reader = LambdaSchedules()
    >>> reader.start(); opt.step(); schedule.step(); reader.stop()
    >>> reader.factor_peak(opt, 0)
    1.0
"""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import LambdaLR

from trainwell.doctor.method_readers import ReadsCalls

#: the steps a schedule function is read over: this many times the steps it was stepped, within the bounds
HORIZON_TIMES, HORIZON_LEAST, HORIZON_MOST = 100, 1_000, 100_000


class LambdaSchedules(ReadsCalls):
    """Keeps each ``LambdaLR`` whose rates were computed (``get_lr``, on every ``step()``) between :meth:`start`
    and :meth:`stop`."""

    patched = (LambdaLR, "get_lr")

    def __init__(self) -> None:
        self.schedulers: dict[int, LambdaLR] = {}

    def saw(self, scheduler: LambdaLR) -> None:
        self.schedulers[id(scheduler)] = scheduler

    def factor_peak(self, optimizer, group: int) -> float | None:
        """The largest finite value the function of ``optimizer``'s param group ``group`` returns over steps 0 to
        :data:`HORIZON_TIMES` times the steps its scheduler was stepped (the first step it raises on ends the
        read); None when no LambdaLR of that optimizer was stepped, or its function returned nothing readable."""
        scheduler = next((s for s in self.schedulers.values() if s.optimizer is optimizer), None)
        if scheduler is None or group >= len(scheduler.lr_lambdas):
            return None
        function = scheduler.lr_lambdas[group]
        horizon = min(HORIZON_MOST, max(HORIZON_LEAST, HORIZON_TIMES * (scheduler.last_epoch + 1)))
        peak = None
        for step in range(horizon):
            try:
                value = float(function(step))
            except Exception:  # noqa: BLE001 - a user's function may not be defined past its schedule
                break
            if math.isfinite(value) and (peak is None or value > peak):
                peak = value
        return peak
