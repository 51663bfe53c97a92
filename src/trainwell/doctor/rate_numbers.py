"""The loss curve's learning-rate advice in the numbers of the user's own rate.

"lower the learning rate (by 3-10x)" leaves the arithmetic to the reader; a loop that ran at one rate throughout,
in one parameter group, is told the range to try instead: ``lr=5`` -> "from 5 to 0.5-1.7", and under SGD's
momentum ``β`` the effective rates ``lr / (1 - β)`` that range means. A scheduled or per-group rate keeps the plain
factor: which of its values to scale is the user's choice.

Example:
    >>> from trainwell.doctor.verdict import Verdict
    >>> v = Verdict("learning rate (loss curve)", "fail", "too high", "", "lower the learning rate (by 3-10x)")
    >>> with_rate(v, [5.0, 5.0], []).advice
    'lower the learning rate (by 3-10x: from 5 to 0.5-1.7)'
"""

from __future__ import annotations

import math

from trainwell.doctor.verdict import Verdict

FACTOR = "(by 3-10x)"


def with_rate(curve: Verdict, lrs: list[float], group_lrs: list[list[float]], momentum: float | None = None) -> Verdict:
    """``curve`` with its "lower/raise the learning rate (by 3-10x)" advice given the range its rate goes to, when
    the loop applied one finite rate at every step (``lrs``: the first group's per step; ``group_lrs``: every
    group's, when there are several); else ``curve`` itself. ``momentum``: SGD's heavy-ball ``β``, whose steps
    reach ``lr / (1 - β)`` (:mod:`~trainwell.doctor.momentum_curve`): the effective rates are named too."""
    advice = curve.advice or ""
    if curve.status not in ("warn", "fail") or FACTOR not in advice or not lrs:
        return curve
    rate = lrs[0]
    if not (math.isfinite(rate) and rate > 0) or any(r != rate for r in lrs) or \
            any(r != rate for rates in group_lrs for r in rates):
        return curve
    if f"lower the learning rate {FACTOR}" in advice:
        low, high = rate / 10, rate / 3
    elif f"raise the learning rate {FACTOR}" in advice:
        low, high = 3 * rate, 10 * rate
    else:
        return curve
    told = f"(by 3-10x: from {rate:.3g} to {low:.2g}-{high:.2g}"
    if momentum is not None:
        scale = 1 / (1 - momentum)
        told += (f"; with momentum {momentum:g} the effective rate lr / (1 - {momentum:g}) goes from "
                 f"{rate * scale:.3g} to {low * scale:.2g}-{high * scale:.2g}")
    told += ")"
    return Verdict(curve.check, curve.status, curve.value, curve.expected, advice.replace(FACTOR, told, 1))
