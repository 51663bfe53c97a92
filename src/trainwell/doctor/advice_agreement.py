"""One direction for the learning rate in a watched loop's report: no report says both "raise" and "lower" it.

A monitor that saw what a step did to the network (units that died, gradients that exploded, a non-finite value)
is a direct reading of steps that were too large. The loss curve's "too low" reading is an indirect one: a slow,
near-linear decrease measured towards 0, and a loss whose floor lies far above 0 (a contrastive loss over the
batch under augmentation, whose floor the views' noise sets) or a network slowed by its dead units decreases so at
any rate. So "raise" advice gives way to a monitor's "lower"; when the curve itself says the rate is too high, the
other verdicts' "raise" advice is rewritten (:func:`~trainwell.doctor.diagnosis.reconcile`).
"""

from __future__ import annotations

from trainwell.doctor.diagnosis import LR_CURVE, reconcile
from trainwell.doctor.verdict import Verdict

RAISE, LOWER = "raise the learning rate", "lower the learning rate"


def agree(verdicts: list[Verdict]) -> list[Verdict]:
    """``verdicts`` with the learning-rate advice made to point one way (statuses kept, except the loss curve's,
    which becomes 'info' when a monitor's direct reading contradicts its "too low")."""
    lowering = [v for v in verdicts if v.check != LR_CURVE and v.status in ("warn", "fail") and
                LOWER in (v.advice or "")]
    if lowering:
        names = ", ".join(f"'{v.check}'" for v in lowering[:2])
        return [_gives_way(v, names) if RAISE in (v.advice or "") and v.status in ("warn", "fail") else v
                for v in verdicts]
    curve = next((v for v in verdicts if v.check == LR_CURVE), None)
    if curve is None or curve.status not in ("warn", "fail") or not str(curve.value).startswith(("too high", "high")):
        return verdicts
    return [Verdict(**d) for d in reconcile([v.as_dict() for v in verdicts])]


def _gives_way(v: Verdict, names: str) -> Verdict:
    """A verdict advising to raise the rate while ``names`` saw steps that were too large."""
    if v.check == LR_CURVE:
        return Verdict(v.check, "info", f"{v.value}; not judged: {names} saw steps too large for the network",
                       v.expected, f"follow {names} first: dead units (or a loss whose floor is far above 0, such as "
                       "a contrastive loss's) slow the curve at any rate, so a slow decrease does not say the rate "
                       "is low")
    return Verdict(v.check, v.status, v.value, v.expected, f"{names} saw steps too large for the network, so do not "
                   "raise the learning rate: tiny updates here follow from units that no longer learn")
