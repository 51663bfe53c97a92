"""A loss curve's "high: fast drop, then a plateau" read against the watched steps' update/weight ratios.

cs231n ("babysitting the learning process") reads a fast drop followed by a plateau at a worse value as a high
learning rate, and the update/weight ratio, ~1e-3 when healthy, as the rate's direct measure. The curve alone cannot
tell a plateau held up by steps too large from the loss's own floor: a quantile (pinball) or noisy regression loss
levels off at the spread of its targets given the inputs, and a healthy rate reaches that level by mid-run just as
a high one does (a 3x lower rate ends at the same loss). The plateau keeps its "high" reading where the steps agree,
an update/weight ratio more than 10x cs231n's healthy one (the top of the band that
:func:`~trainwell.doctor.watch_verdicts.flat_direction` reads a flat curve's direction from); with steps of healthy
size it is information: the rate is not shown to be high.
"""

from __future__ import annotations

import math

#: the update/weight ratio above which a plateau is read as steps too large (10x cs231n's healthy ~1e-3)
LARGE_RATIO = 1e-2

#: the prefix of the curve reading this module reconsiders
PLATEAU = "high: fast drop, then a plateau"


def observed_ratios(w) -> list[float]:
    """The finite update/weight ratios of every tensor on every observed step, sorted; the tensors that moved only,
    where any did (optimizers stepped in turn leave the others at 0)."""
    ratios = sorted(v for r in w.monitor.records for v in r["update_ratio"].values() if math.isfinite(v))
    return [v for v in ratios if v > 0] or ratios


def middle_ratio(ratios: list[float]) -> float | None:
    """The middle of sorted ratios: the geometric mean of the two middles for an even count (one of a small model's
    two weights alone does not decide); None for none."""
    if not ratios:
        return None
    return math.sqrt(ratios[(len(ratios) - 1) // 2] * ratios[len(ratios) // 2])


def plateau_at_healthy_steps(w, verdict):
    """The curve's verdict, with a "high: fast drop, then a plateau" read as information where the observed steps'
    middle update/weight ratio is at most :data:`LARGE_RATIO`: the plateau may be the loss's floor (the targets'
    noise), which no rate goes below; any other verdict, or one without observed ratios, is returned as it is."""
    value = str(verdict.value)
    if verdict.status != "warn" or not value.startswith(PLATEAU):
        return verdict
    middle = middle_ratio(observed_ratios(w))
    if middle is None:
        return verdict
    if middle > LARGE_RATIO:
        return type(verdict)(verdict.check, verdict.status, f"{value}; update/weight {middle:.2g} (healthy ~1e-3)",
                             verdict.expected, verdict.advice)
    return type(verdict)(verdict.check, "info", f"levelled off: the drop made by mid-run, then a plateau, with "
                         f"steps of healthy size (update/weight {middle:.2g}, healthy ~1e-3, high above "
                         f"{LARGE_RATIO:g}); {value[len('high: ') :]}", verdict.expected,
                         "the plateau may be the loss's own floor (a quantile or noisy regression levels off at the "
                         "spread of its targets given the inputs, at any rate); if it should go lower, compare the "
                         "final loss at a third of this rate before changing it (cs231n: a high rate's plateau "
                         "comes with large updates)")
