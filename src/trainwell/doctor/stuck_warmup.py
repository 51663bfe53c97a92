"""A warm-up written by hand whose step counter never advances::

    for g in opt.param_groups:
        g["lr"] = base_lr * min(1.0, (step + 1) / warmup_steps)   # step += 1 forgotten

The loop sets the rate before every step, always to the warm-up's first value, ``base_lr / warmup_steps``: the
whole run trains at a rate hundreds of times below the one chosen, and the loss curve reads as a rate too low
(gradual warm-up: Goyal et al. 2017, "Accurate, Large Minibatch SGD").

From the rates alone, a stuck warm-up looks like a small constant rate chosen on purpose. What tells them apart is
the rate the param group had when the watch began (the ``lr`` the optimizer was built with, or the one a scheduler
set): a rate chosen on purpose is the one the optimizer was built with; a stuck warm-up rewrites it, inside the
loop, to one fixed fraction of it. Named when a param group's rate was one value at every step of
:data:`LEAST_STEPS` or more, at most :data:`FRACTION` of its rate when the watch began (a warm-up of 20 steps or
more; a deliberate step down between training phases is usually 10x), in a group no scheduler holds (no
``initial_lr``). A warm-up that advances changes the rate every step; a scheduler created and never stepped is
named by :mod:`~trainwell.doctor.unstepped_schedulers`.

Example:
    >>> stuck_fraction([0.00025] * 40, 0.05)
    0.005
    >>> stuck_fraction([0.05] * 40, 0.05) is None
    True
"""

from __future__ import annotations

import math

from trainwell.doctor.verdict import Verdict

NAME = "loop: learning rate applied"
#: the rate at most this share of the group's rate when the watch began
FRACTION = 0.05
#: steps at the one rate before it is read
LEAST_STEPS = 20


def stuck_fraction(rates: list[float], start: float | None) -> float | None:
    """The share of ``start`` (the group's rate when the watch began) that ``rates`` (the group's rate at every
    step) held at every one of :data:`LEAST_STEPS` or more steps, when it is at most :data:`FRACTION` and above 0;
    else None."""
    if start is None or not math.isfinite(start) or not start > 0 or len(rates) < LEAST_STEPS:
        return None
    rate = rates[0]
    if not math.isfinite(rate) or not rate > 0 or any(v != rate for v in rates):
        return None
    share = rate / start
    return share if share <= FRACTION else None


def stuck_warmup(group_rates: list[list[float]], start_lrs: list[float],
                 initial_lrs: list[float | None] = ()) -> Verdict | None:
    """A warn for the first param group whose rates (``group_rates``: each group's rate at every step) held one
    value at most :data:`FRACTION` of the group's rate when the watch began (``start_lrs``); None otherwise. A group
    with a scheduler's ``initial_lr`` (``initial_lrs``) is the scheduler's to set (a ``ConstantLR`` holds a
    fraction of the rate on purpose) and is not read."""
    for i, rates in enumerate(group_rates):
        if i < len(initial_lrs) and initial_lrs[i] is not None:
            continue
        start = start_lrs[i] if i < len(start_lrs) else None
        share = stuck_fraction(rates, start)
        if share is None:
            continue
        where = f"param group {i}: " if len(group_rates) > 1 else ""
        k = round(1 / share)
        fraction = f"1/{k}" if math.isclose(start / k, rates[0], rel_tol=1e-6) else f"{share:.3g}x"
        return Verdict(NAME, "warn", f"{where}the rate was {rates[0]:.3g} at all {len(rates)} steps: {fraction} of "
                       f"the {start:.3g} the param group had when the watch began, set to that one value inside the "
                       "loop (a warm-up stuck at its first step?)", "a warm-up that climbs to the optimizer's lr",
                       "a hand-written warm-up whose step counter never advances (lr * (step + 1) / warmup_steps with "
                       "step stuck at 0)? Increment it once per optimizer step, or use LambdaLR/LinearLR stepped "
                       "after every optimizer.step() (Goyal et al. 2017); to train at this rate on purpose, build "
                       "the optimizer with it")
    return None
