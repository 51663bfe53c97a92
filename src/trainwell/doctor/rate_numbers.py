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
import re

from trainwell.doctor.verdict import Verdict

FACTOR = "(by 3-10x)"
#: a factor the advice names, "(by 3-10x)" or "(by 10x)", or one measured (:func:`~trainwell.doctor.watch_verdicts.
#: rate_factor`: "(by 13-40x)"), with the range of factors it means
_FACTOR = re.compile(r"\(by (\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?x\)")


def with_rate(curve: Verdict, lrs: list[float], group_lrs: list[list[float]], momentum: float | None = None) -> Verdict:
    """``curve`` with its "lower/raise the learning rate (by 3-10x)" (or "(by 10x)") advice given the range its rate
    goes to, when the loop applied one finite rate at every step (``lrs``: the first group's per step;
    ``group_lrs``: every group's, when there are several); else ``curve`` itself. ``momentum``: SGD's heavy-ball
    ``β``, whose steps reach ``lr / (1 - β)`` (:mod:`~trainwell.doctor.momentum_curve`): the effective rates are
    named too.

    >>> v = Verdict("learning rate (loss curve)", "warn", "flat", "", "raise the learning rate (by 10x)")
    >>> with_rate(v, [1e-5] * 3, []).advice
    'raise the learning rate (by 10x: from 1e-05 to 0.0001)'
    """
    advice = curve.advice or ""
    found = _FACTOR.search(advice)
    if curve.status not in ("warn", "fail") or found is None or not lrs:
        return curve
    factor = found.group(0)
    rate = lrs[0]
    if not (math.isfinite(rate) and rate > 0) or any(r != rate for r in lrs) or \
            any(r != rate for rates in group_lrs for r in rates):
        return curve
    least, most = float(found.group(1)), float(found.group(2) or found.group(1))
    if f"lower the learning rate {factor}" in advice:
        low, high = rate / most, rate / least
    elif f"raise the learning rate {factor}" in advice:
        low, high = least * rate, most * rate
    else:
        return curve
    to = f"{low:.2g}" if least == most else f"{low:.2g}-{high:.2g}"
    told = f"{factor[:-1]}: from {rate:.3g} to {to}"
    if momentum is not None:
        scale = 1 / (1 - momentum)
        effective = f"{low * scale:.2g}" if least == most else f"{low * scale:.2g}-{high * scale:.2g}"
        told += (f"; with momentum {momentum:g} the effective rate lr / (1 - {momentum:g}) goes from "
                 f"{rate * scale:.3g} to {effective}")
    told += ")"
    return Verdict(curve.check, curve.status, curve.value, curve.expected, advice.replace(factor, told, 1))
