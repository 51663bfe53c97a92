"""A learning-rate scheduler created again at the start of every epoch, on the same optimizer:
``for epoch in ...: sched = OneCycleLR(opt, max_lr, total_steps=len(loader))``. Each new scheduler starts its
schedule over (a one-cycle's warm-up, a cosine from its base rate, a linear warm-up), or, as ``CosineAnnealingLR``
and ``LinearLR`` do when created on an optimizer whose rate they already moved, from wherever the last one left
the rate: the run never follows the schedule it was sized for.

Read from the schedulers' construction (``LRScheduler.__init__``, which every torch scheduler but
``ReduceLROnPlateau`` calls) while watched, on the watched optimizer, fresh ones only (``last_epoch=-1``; one
created to resume where another stopped passes). The fingerprint is a new scheduler object at the start of 3 or
more epochs in a row, each epoch told by one ``w.validate`` (or one pass over the training ``DataLoader``'s
dataset) between two creations. ``ReduceLROnPlateau``, whose ``__init__`` is its own, is read from that ``__init__``:
one created again every epoch restarts its patience count and best value each time, so it never lowers the rate.
The rates the optimizer applied decide: a rebuilt scheduler whose rates continue the previous one's
(``LambdaLR(opt, lambda s: decay(s + epoch * steps_per_epoch))``, an ``ExponentialLR``) passes (:func:`starts_over`).
Warm restarts by design come from one scheduler
(``CosineAnnealingWarmRestarts``, ``CyclicLR``) and pass; so does a scheduler created once per run of a sweep that
trains several epochs per run. Without any epoch to read, schedulers replaced before their own horizon
(``OneCycleLR``'s ``total_steps``, ``CosineAnnealingLR``'s ``T_max``, ``total_iters``) every time are named.

Example:
    >>> import torch
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    >>> steps = [0]
    >>> builds = SchedulerBuilds([opt], lambda: steps[0])
    >>> builds.start()
    >>> for epoch in range(3):
    ...     schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    ...     steps[0] += 10
    >>> builds.stop()
    >>> builds.epochs()
    [0, 10, 20]
"""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from trainwell.doctor.scheduler_inits import SchedulerInits
from trainwell.doctor.verdict import Verdict

NAME = "loop: learning rate applied"
#: epochs in a row that begin with a new scheduler before it reads as the loop creating one per epoch
LEAST_BUILDS = 3
#: the attributes that hold a scheduler's horizon, in its own steps
_HORIZONS = ("total_steps", "T_max", "total_iters")

ADVICE = ("the scheduler is created again every epoch, so its schedule starts over each epoch: create it once "
          "before the epoch loop, sized for the whole run (e.g. OneCycleLR(opt, max_lr, total_steps=epochs * "
          "len(loader))), and step it after every optimizer.step(); for restarts on purpose use one "
          "CosineAnnealingWarmRestarts")
PLATEAU_ADVICE = ("ReduceLROnPlateau is created again every epoch, so its patience count and best value start over "
                  "each epoch and it never sees the epochs without improvement it waits for: create it once before "
                  "the epoch loop and call scheduler.step(val_loss) once after each epoch's validation")


class SchedulerBuilds(SchedulerInits):
    """Keeps (the loop's step count, the scheduler) for each fresh scheduler created on one of ``optimizers``
    between :meth:`start` and :meth:`stop` (``clock``: the loop's step count, the optimizer steps recorded so
    far)."""

    def __init__(self, optimizers: list, clock) -> None:
        super().__init__()
        self._optimizers = optimizers
        self._clock = clock
        self.builds: list[tuple[int, LRScheduler]] = []

    def saw(self, scheduler: LRScheduler, optimizer=None, last_epoch: int = -1, *args, **kwargs) -> None:
        optimizer = kwargs.get("optimizer", optimizer)
        if last_epoch != -1 or len(self.builds) >= 10_000:  # resumed where another one stopped
            return
        groups = getattr(optimizer, "param_groups", None)
        if groups is not None and any(groups is o.param_groups for o in self._optimizers) and \
                not any(scheduler is s for _, s in self.builds[-4:]):
            self.builds.append((self._clock(), scheduler))

    def epochs(self) -> list[int]:
        """The distinct step counts at which fresh schedulers were created (several at one count, the parts of a
        SequentialLR, count once)."""
        return sorted({step for step, _ in self.builds})

    def verdict(self, lrs: list[float], validations: list[int], loader_starts: list[tuple[int, int]]) -> \
            Verdict | None:
        """A warn when fresh schedulers were created at :data:`LEAST_BUILDS` or more step counts, one epoch apart
        each time: one validation (``validations``: the step count at each ``w.validate``) or one pass over a
        dataset (``loader_starts``: (dataset id, step count) at each DataLoader iteration) between two creations;
        with neither to read, each one replaced before its own horizon. ``lrs``: the rate at every step."""
        at = self.epochs()
        if len(at) < LEAST_BUILDS:
            return None
        spans = list(zip(at, at[1:], strict=False))
        per_epoch = _one_validation_each(spans, validations) or _one_pass_each(spans, loader_starts)
        short = _replaced_early(spans, self.builds)
        if not per_epoch and (validations or loader_starts or not short):
            return None
        plateaus = all(isinstance(s, ReduceLROnPlateau) for _, s in self.builds)
        if not plateaus and not starts_over(lrs, at):
            return None
        kinds = sorted({type(s).__name__ for _, s in self.builds})
        lengths = sorted({b - a for a, b in spans})
        every = f"{lengths[0]}" if len(lengths) == 1 else f"{lengths[0]}-{lengths[-1]}"
        firsts = [lrs[s] for s in at if s < len(lrs)]
        rates = ", ".join(f"{v:.3g}" for v in firsts[:4]) + (", ..." if len(firsts) > 4 else "")
        why = "at the start of each epoch" if per_epoch else f"each replaced before its {short} steps ended"
        made = f"{' and '.join(kinds)} created again {len(at)} times on the optimizer, {why} (every {every} steps)"
        if plateaus:
            seen = [v for v in lrs[at[0]:] if v == v]
            never = bool(seen) and min(seen) >= seen[0]
            lowered = f"the rate is never lowered ({seen[0]:.3g} throughout)" if never else \
                f"the rate ran {rates}"
            return Verdict(NAME, "warn", f"{made}: its patience restarts each time, so {lowered}",
                           "one ReduceLROnPlateau for the whole run", PLATEAU_ADVICE)
        return Verdict(NAME, "warn", f"{made}: the schedule starts over each time; the rate at each one's first "
                       f"step: {rates}", "one scheduler for the whole run", ADVICE)


def starts_over(lrs: list[float], at: list[int]) -> bool:
    """Whether the rates applied after each creation (``at``: the step counts of the creations; ``lrs``: the rate
    at every step) start the schedule over: each new scheduler's first rate back at the first one's, or each one's
    rates repeating the first one's course (scaled: a ``CosineAnnealingLR`` or ``LinearLR`` created on a rate it
    already moved) where that course is no constant factor per step, which a continuing schedule repeats too. A
    rebuilt scheduler whose rates continue the previous one's (``LambdaLR(opt, lambda s: f(s + epoch * steps))``,
    an ``ExponentialLR``) does not."""
    ends = [*at[1:], len(lrs)]
    runs = [[v for v in lrs[a:b] if math.isfinite(v)] for a, b in zip(at, ends, strict=False)]
    first, later = runs[0], [r for r in runs[1:] if r]
    if not first or not later:
        return True
    if all(_close(r[0], first[0]) for r in later):
        return True
    return _not_geometric(first) and all(_same_course(first, r) for r in later)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-12)


def _same_course(a: list[float], b: list[float]) -> bool:
    """``b``'s rates follow ``a``'s course up to a scale, over the steps both ran (2 at least)."""
    m = min(len(a), len(b))
    top_a, top_b = max(a[:m]), max(b[:m])
    return m >= 2 and top_a > 0 and top_b > 0 and all(_close(u / top_a, v / top_b) for u, v in zip(a[:m], b[:m],
                                                                                                  strict=False))


def _not_geometric(rates: list[float]) -> bool:
    """The rates change by more than one constant factor per step (a constant rate is one such factor)."""
    if any(v <= 0 for v in rates):
        return any(v != rates[0] for v in rates)
    factors = [b / a for a, b in zip(rates, rates[1:], strict=False)]
    return any(not _close(f, factors[0]) for f in factors)


def _one_validation_each(spans: list[tuple[int, int]], validations: list[int]) -> bool:
    """Exactly one ``w.validate`` between each two creations (after the first's steps, by the next one)."""
    return bool(validations) and all(sum(a < v <= b for v in validations) == 1 for a, b in spans)


def _one_pass_each(spans: list[tuple[int, int]], starts: list[tuple[int, int]]) -> bool:
    """One dataset whose DataLoader began exactly one pass between each two creations."""
    datasets = {d for d, _ in starts}
    return any(all(sum(d == e and a <= s < b for e, s in starts) == 1 for a, b in spans) for d in datasets)


def _replaced_early(spans: list[tuple[int, int]], builds: list[tuple[int, LRScheduler]]) -> int | None:
    """The horizon (in steps) of the scheduler created at each span's start when every one of them was replaced
    before it; None otherwise."""
    horizons = []
    for a, b in spans:
        made = [s for step, s in builds if step == a]
        horizon = next((getattr(s, h) for s in made for h in _HORIZONS if isinstance(getattr(s, h, None), int)),
                       None)
        if horizon is None or b - a >= horizon:
            return None
        horizons.append(horizon)
    return max(horizons) if horizons else None
