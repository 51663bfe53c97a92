"""The loss curve read after a learning-rate warm-up. While the rate climbs from near 0 to its peak, the loss
falls about as fast as the rate allows: slowly at first, faster as the rate grows, so over a run whose warm-up
fills much of it the curve looks like a slow, near-linear decrease ("too low") whatever the peak rate. The curve's
shape tells the rate only once the rate has reached its peak, so a "too low" reading is redone on the steps from
there on, where enough of them are left.

Example:
    >>> warmup_end([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.6, 0.6] + [0.6] * 30)
    5
    >>> warmup_end([0.6] * 38) is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from trainwell.doctor.verdict import Verdict

#: a warm-up starts at or below this share of its peak
WARMUP_START = 0.5
#: it climbs for at least this many steps
WARMUP_LEAST = 5
#: and leaves at least this many steps at or after its peak to read the curve on
READ_LEAST = 20


def warmup_end(lrs: list[float]) -> int | None:
    """The index of the first step at the peak rate when the rate climbed to it from at most
    :data:`WARMUP_START` of it, never falling on the way, over :data:`WARMUP_LEAST` steps or more, and
    :data:`READ_LEAST` steps or more follow from there; else None."""
    if not lrs or not all(math.isfinite(v) for v in lrs):
        return None
    peak = max(lrs)
    end = lrs.index(peak)
    if not peak > 0 or lrs[0] > WARMUP_START * peak or end < WARMUP_LEAST or len(lrs) - end < READ_LEAST:
        return None
    if any(b < a for a, b in zip(lrs[:end], lrs[1 : end + 1], strict=True)):
        return None
    return end


def reread_after_warmup(curve: Verdict, lrs: list[float], losses: list[float],
                        read: Callable[[int], Verdict]) -> Verdict:
    """``curve``, the whole run's reading, or, where it reads "too low" over a warm-up (``lrs``: the rate applied
    at each of the ``losses``' steps), ``read(start)``'s reading of the steps from the warm-up's end on, unless
    that reads "too low" too."""
    if not str(curve.value).startswith("too low") or len(lrs) != len(losses):
        return curve
    start = warmup_end(lrs)
    if start is None:
        return curve
    later = read(start)
    if str(later.value).startswith("too low"):
        return curve
    return replace(later, value=f"after the warm-up (steps {start + 1}-{len(losses)}, the rate at its peak): "
                                f"{later.value}")
