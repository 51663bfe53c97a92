"""A warm-up that never ends: ``LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))`` with ``warmup`` sized far
past the run (in examples rather than steps, or the run's steps times the epochs). The rate climbs a little on
every step and the run ends long before it reaches the optimizer's lr: the whole run trains at a small fraction of
the rate chosen, and the loss curve reads as a rate too low. A warm-up is a short ramp, a few percent of the run,
to the rate that then trains (Goyal et al. 2017, "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour",
section 2.2).

Read from the rates applied: over :data:`LEAST` steps or more the rate never fell, rose on
:data:`RISING_SHARE` of the steps or more (a per-step ramp; one stepped per epoch rises in a few jumps, read by
:mod:`~trainwell.doctor.loop_schedule`), and ended at :data:`SHORT` of the scheduler's base rate or below. Where the
group's ``LambdaLR`` function can be read past the watched steps
(:meth:`~trainwell.doctor.lambda_factors.LambdaSchedules.factor_peak`), it must go on to rise (to twice the
last step's factor or more): a ramp the schedule itself caps where the run ended is a schedule, not a warm-up cut
short. A warm-up that reaches its rate passes, however long.

Example:
    >>> ramp = [0.1 * (s + 1) / 1600 for s in range(160)]
    >>> endless_warmup("loop: learning rate applied", ramp, None, 0.1, None).status
    'warn'
    >>> endless_warmup("loop: learning rate applied", [0.1 * min(1, (s + 1) / 16) for s in range(160)], None, 0.1,
    ...                None) is None
    True
"""

from __future__ import annotations

from collections.abc import Callable

from trainwell.doctor.verdict import Verdict

#: the rate at the last step, over the scheduler's base rate, at or below which the warm-up is far from its end
SHORT = 0.25
#: the share of steps on which the rate rose, at least: a ramp stepped per step
RISING_SHARE = 0.9
#: rates read, at least
LEAST = 50
#: the function's peak past the watched steps over the last step's factor, at least, where it can be read
GOES_ON = 2.0


def endless_warmup(name: str, lrs: list[float], group: int | None, initial_lr: float | None,
                   factor_peak: Callable[[], float | None] | None) -> Verdict | None:
    """A warning when the rate rose on (nearly) every step of the run, never fell, and ended at :data:`SHORT` of
    the scheduler's base rate (``initial_lr``) or below; else None."""
    if initial_lr is None or not initial_lr > 0 or len(lrs) < LEAST or not lrs[0] > 0:
        return None
    pairs = list(zip(lrs, lrs[1:], strict=False))
    if any(b < a for a, b in pairs) or sum(b > a for a, b in pairs) < RISING_SHARE * len(pairs):
        return None
    last = lrs[-1] / initial_lr
    if last > SHORT:
        return None
    peak = factor_peak() if factor_peak is not None else None
    if peak is not None and peak < GOES_ON * last:
        return None
    where = f"param group {group}: " if group is not None else ""
    ahead = f" (its LambdaLR function goes on to {peak:.3g}x)" if peak is not None else ""
    return Verdict(name, "warn", f"{where}a warm-up that never ended: the rate rose on every step and ended at "
                   f"{lrs[-1]:.3g}, {last:.0%} of the scheduler's base rate {initial_lr:.3g}{ahead} ({lrs[0]:.3g} at "
                   f"step 1 -> {lrs[-1]:.3g} at step {len(lrs)}): the whole run trained below the rate chosen",
                   "a warm-up that reaches the optimizer's lr within the first few percent of the run",
                   "size the warm-up in optimizer steps, a few percent of the run (e.g. one epoch: "
                   "len(loader)), not in examples or in epochs x steps; then hold or decay the rate")
