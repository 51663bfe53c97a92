"""The loss curve read after the momentum's build-up. SGD with heavy-ball momentum ``β`` (and RMSprop's momentum)
adds each gradient to a velocity that starts at zero: under a steady gradient the step after ``t`` updates is
``lr (1 - β^t) / (1 - β)`` times it, growing to the effective rate ``lr / (1 - β)`` (Polyak 1964; Sutskever et al.
2013; Goh 2017, "Why Momentum Really Works"), 90% of it after :func:`buildup_steps` steps (22 at ``β = 0.9``). Over
that build-up the loss falls as an implicit warm-up lets it, slowly first and faster as the step grows, so a run
that the build-up fills much of reads as a slow, near-linear decrease ("too low") at any rate, and the advice to
raise ``lr`` 3-10x asks for an effective rate of ``30-100 lr`` at ``β = 0.9``. A "too low" reading is redone on
the steps after the build-up where :data:`~trainwell.doctor.warmup_curve.READ_LEAST` of them are left (it stands
where they read "too low" too, or their fewer steps' noise hides the shape: a rate too low at 60 steps of batch 16
reads "noisy" on its last 38); a run the build-up fills a quarter of or more, with too few steps after it, is
read instead by the distance its steps travelled (:func:`travelled_steps`: the steps at even shares of the summed
step sizes ``1 - β^t``, which takes the implicit warm-up out of the curve's shape), and where that tells no rate,
the reading says how many steps it needs. Adam's moments are bias-corrected (Kingma & Ba 2015): its step has no
build-up, and its curve is read as it is.

Example:
    >>> buildup_steps(0.9), buildup_steps(0.99)
    (22, 230)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import torch

from trainwell.doctor.verdict import Verdict
from trainwell.doctor.warmup_curve import READ_LEAST

#: the build-up ends where the step has reached this share of lr / (1 - β)
BUILT = 0.9
#: a build-up over this share of the run, with too few steps after it, leaves the run's curve unread
SHARE = 0.25
#: the readings of the steps after the build-up that show a rate not too low (besides a pass): a plateau or a
#: bounce at the full step, a curve that levelled off; "noisy", "flat" and "too low" leave the whole run's reading
_SHOWN = ("high", "too high", "levelled off")
#: the fewest steps a curve read by the distance travelled has (the curve reading's own least for a verdict)
TRAVELLED_LEAST = 10


def buildup_steps(beta: float) -> int:
    """The updates after which momentum ``β``'s step reaches :data:`BUILT` of ``lr / (1 - β)``: the least ``t``
    with ``1 - β^t >= BUILT``."""
    return math.ceil(math.log(1 - BUILT) / math.log(beta) - 1e-9)


def heavy_ball(optimizers: list) -> float | None:
    """The momentum ``β`` in (0, 1) that every parameter group of ``optimizers`` (``torch.optim.SGD`` without
    dampening, or ``torch.optim.RMSprop``) steps with, when they share one; else None (Adam, no momentum)."""
    betas = set()
    for opt in optimizers:
        if not isinstance(opt, (torch.optim.SGD, torch.optim.RMSprop)):
            return None
        for group in opt.param_groups:
            beta = group.get("momentum", 0.0)
            if not isinstance(beta, (int, float)) or not 0 < beta < 1 or group.get("dampening", 0.0):
                return None
            betas.add(float(beta))
    return betas.pop() if len(betas) == 1 else None


def travelled_steps(steps: int, beta: float) -> list[int]:
    """The indices of the steps (of ``steps`` from the optimizer's first) nearest to each whole unit of the distance
    the steps travelled, ``τ(t) = Σ_{s<=t} (1 - β^s)`` in units of the full step ``lr / (1 - β)`` (under a steady
    gradient): a curve read on them is the loss against the distance travelled, in which a rate too low falls
    near-linearly from the first step (its steps are short throughout) and a healthy one bends, where by steps
    both start slowly. The early steps, shorter than a unit, are thinned out; no loss is interpolated.

    >>> travelled_steps(6, 0.5)  # τ = 0.5, 1.25, 2.125, 3.06, 4.03, 5.02
    [0, 1, 2, 3, 4, 5]
    >>> travelled_steps(8, 0.9)  # τ = 0.1, 0.29, 0.56, 0.91, 1.32, 1.79, 2.31, 2.88
    [0, 3, 5]
    """
    distance, total = [], 0.0
    for t in range(1, steps + 1):
        total += 1 - beta ** t
        distance.append(total)
    return sorted({min(range(steps), key=lambda i: abs(distance[i] - k)) for k in range(int(total) + 1)})


def momentum_started(optimizers: list) -> bool:
    """Whether the optimizers hold a velocity already (a watch begun after the loop's first steps, a resumed
    state): their build-up is then behind them."""
    return any("momentum_buffer" in state for opt in optimizers for state in opt.state.values())


def reread_after_buildup(curve: Verdict, beta: float | None, steps: int, read: Callable[[int], Verdict],
                         read_steps: Callable[[list[int]], Verdict] | None = None) -> Verdict:
    """``curve``, the whole run's reading of ``steps`` steps from the optimizer's first, or, where it reads "too
    low" under momentum ``beta`` (None: none, or built up before the curve began), ``read(start)``'s reading of
    the steps after the build-up where that passes or shows a rate not too low (:data:`_SHOWN`), or, with too few
    of them left and a build-up over :data:`SHARE` of the run, ``read_steps(indices)``'s reading of the curve by
    the distance travelled (:func:`travelled_steps`) where it has :data:`TRAVELLED_LEAST` steps or more and reads
    a rate (passes, reads "high" or "too high", or "too low" again), else a reading that the run is too short to
    tell the rate, with the steps it needs."""
    if beta is None or not str(curve.value).startswith("too low"):
        return curve
    built = buildup_steps(beta)
    if steps - built >= READ_LEAST:
        later = read(built)
        if later.status != "pass" and not str(later.value).startswith(_SHOWN):
            return curve  # still "too low", or noise that hides the shape: the whole run's reading stands
        return replace(later, value=f"after the momentum's build-up (steps {built + 1}-{steps}, each step near "
                                    f"lr / (1 - {beta:g})): {later.value}")
    if built < SHARE * steps:
        return curve
    within = "all lie within" if built >= steps else "lie mostly within" if 2 * built >= steps else "begin with"
    picked = travelled_steps(steps, beta)
    travelled = f"too few steps to read it by the distance they travelled ({len(picked)}, fewer than {TRAVELLED_LEAST})"
    if read_steps is not None and len(picked) >= TRAVELLED_LEAST:
        far = read_steps(picked)
        travelled = (f"read by the distance its steps travelled ({len(picked)} steps) the curve is "
                     f"{str(far.value).split(':', 1)[0]}, which tells no rate")
        # "levelled off" is left out: on a short run's few steps a rate too low's noise draws it too
        if far.status == "pass" or str(far.value).startswith(("high", "too high", "too low")):
            return replace(far, value=f"read by the distance its steps travelled (the run's {steps} steps {within} "
                                      f"the momentum's build-up, momentum {beta:g}: {len(picked)} steps at even "
                                      f"shares of the summed step sizes 1 - {beta:g}^t): {far.value}")
    return Verdict(curve.check, "info", f"unknown: the run's {steps} steps {within} the momentum's build-up "
                   f"(momentum {beta:g}: the step grows to lr / (1 - {beta:g}) = {1 / (1 - beta):.3g}x lr, "
                   f"{BUILT:.0%} of it after {built} steps), which draws a slow start at any rate; {travelled}; "
                   f"to be read after the build-up it needs {built + READ_LEAST} steps or more; here "
                   f"{curve.value.removeprefix('too low: ')}",
                   f">= {built + READ_LEAST} steps, to read the rate on those after the build-up",
                   "train longer before judging the learning rate by its curve; on a run this short, compare the "
                   f"final loss at this rate and at 3x it (3x lr with momentum {beta:g} is an effective rate of "
                   f"{3 / (1 - beta):.3g}x lr)")
