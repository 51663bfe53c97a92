"""The loss curve read after a partial reset: a layer's weights drawn again on purpose mid-run (``model.head.
reset_parameters()``, the last layers reset against the primacy bias, Nikishin et al. 2022). The loss jumps back
up at the reset and falls again as the layer re-learns; read over the whole run, the jump looks like a rate that
bounces ("too high: oscillates"), or, the loss's drop split in two, like a slow, near-linear fall ("too low").
Where the whole run reads "too high", "high" or "too low" and the watch saw such a reset
(:class:`~trainwell.doctor.reinitialized_weights.InitCalls`, under half the weights), the curve is read again from
the last reset on, where enough steps are left; that reading replaces the whole run's only where it passes (or is
info): a rate that is too high bounces, rises or kills the units there too, and the whole run's reading stands."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from trainwell.doctor.verdict import Verdict

#: the reset leaves at least this many steps to read the curve on
READ_LEAST = 20
#: more resets than this read as a routine write (a weight zeroed every step), not a re-initialization
MOST_RESETS = 3
_READ_AGAIN = ("too high", "high", "too low")  # the readings a jump mid-run can give


def reread_after_reset(curve: Verdict, resets: list[tuple[int, list[str]]], losses: list[float],
                       read: Callable[[int], Verdict]) -> Verdict:
    """``curve``, the whole run's reading, or, where it reads "too high", "high" or "too low" and the run had a
    partial reset (``resets``: the step count each came after and the parameters it re-drew), ``read(start)``'s
    reading of the steps from the last reset that leaves :data:`READ_LEAST` steps on, where that reading passes
    (or is info)."""
    if not str(curve.value).startswith(_READ_AGAIN) or not resets or len(resets) > MOST_RESETS:
        return curve
    usable = [(step, names) for step, names in resets if 0 < step <= len(losses) - READ_LEAST]
    if not usable:
        return curve
    start, names = usable[-1]
    later = read(start)
    if later.status not in ("pass", "info"):  # a rate too high (or too low) shows after the reset too
        return curve
    shown = ", ".join(f"'{n}'" for n in names[:3]) + (", ..." if len(names) > 3 else "")
    return replace(later, value=f"from the partial reset of {shown} after step {start} on (steps {start + 1}-"
                                f"{len(losses)}; the loss's jump there is the reset's, not the rate's): {later.value}")
