"""A pre-flight copy trained at a rate too high for the model: retried at a tenth of it before a verdict fails.

The pre-flight trains its copies with full-batch Adam at a fixed rate (1e-2). Most models fit 20 examples at it;
some take far smaller steps: a SIREN (Sitzmann et al. 2020) multiplies each pre-activation by w0 = 30, so a step of
1e-2 in its weights moves its sines by 0.3 rad, and its authors train it at 1e-4. At 1e-2 such a copy's loss jumps
back up again and again and ends where it started, which reads as a model that cannot fit (or does no better than a
constant). That loss curve, far above its own lowest point in the second half of the run, is what a rate too high
draws; a broken model (frozen layers, a cut input) levels off at its lowest point instead. A check that missed with
such a curve (or, for the input-independent baseline, whose copy ended no better on its own training examples than
a constant) trains its copy again at :data:`FACTOR` times the rate; a broken model misses again.
"""

from __future__ import annotations

import math

FACTOR = 0.1  # the rate a retry runs at, relative to the first one
LOWEST = 1e-4  # no retry below this rate
RISE = 0.25  # the second half's mean above the lowest loss, as a share of the drop to it, that reads erratic


def erratic(trace: list[float]) -> bool:
    """Whether a training copy's losses (one per step) went back up: the second half's mean stands above the
    lowest loss by more than :data:`RISE` of the way from the first loss down to it (and 5% of the first loss), or
    turned non-finite."""
    if len(trace) < 20:
        return False
    late = trace[len(trace) // 2:]
    if not all(math.isfinite(v) for v in late):
        return True
    lowest, start = min(trace), trace[0]
    if not math.isfinite(start) or start <= lowest:
        return False
    rise = sum(late) / len(late) - lowest
    return rise > RISE * (start - lowest) and rise > 0.05 * abs(start)


def retry_rate(lr: float, trace: list[float], stuck: bool = False) -> float | None:
    """The rate to train a missed copy again at, when its losses were :func:`erratic` or it is ``stuck`` (it
    ended no better on its own training examples than one constant output: a copy stopped early by the time
    budget may not have shown its jumps yet); None otherwise."""
    return lr * FACTOR if lr * FACTOR >= LOWEST and (stuck or erratic(trace)) else None
