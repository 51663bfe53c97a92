"""The loss curve read after its weights settle: a loss whose terms a schedule weights (a curriculum that ramps the
classification term up while an auxiliary term fades, ``loss = beta(epoch) * ce + alpha(epoch) * aux``). The loss
given to ``w.step`` then changes with the weights as much as with the model: a weight that grows 4x lifts the
curve 4x, which over the whole run reads as a rate that bounces ("too high: oscillates") or, the drop split in
parts, as a slow fall ("too low"). The weight of the class scores' cross-entropy is read on every observed step
(``loop: loss``'s reading of the gradient at the logits); where it changed by :data:`CHANGE` x or more (and not
with the rows, as a summed loss's weight does on a short last batch) and holds its last value from some observed
step on, a "too high", "high" or "too low" reading is redone on the steps from there, where :data:`READ_LEAST` or
more are left; that reading replaces the whole run's only where it passes (or is info): a rate too high still
bounces once the weights hold. A schedule moves the loss by as much as it moves the weight: a loss that rose
above its first value by :data:`EXPLAINED` x the weight's change or more before the weights hold (a classifier's
loss blown from ~2 to 1e5 within its first steps while the weight grew 4x) rose with the rate, and the whole
run's reading stands."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from trainwell.doctor.verdict import Verdict

#: the weights hold for at least this many steps to read the curve on
READ_LEAST = 20
#: the loss weight changed by at least this factor over the observed steps
CHANGE = 1.5
#: observed weights within this relative distance of the last one hold it
HOLD = 0.02
#: a rise of the loss above its first value by this many times the weight's change is not the schedule's
EXPLAINED = 10.0
_READ_AGAIN = ("too high", "high", "too low")  # the readings a weight schedule can give


def _weights(steps: list[dict]) -> list[tuple[int, float, int]]:
    """(step, loss weight, rows) of the observed steps whose cross-entropy's weight was read (finite, positive)."""
    return [(s["step"], float(s["loss_weight"]), max(int(s.get("rows") or 1), 1)) for s in steps
            if s.get("form") is not None and s.get("loss_weight") is not None and
            math.isfinite(float(s["loss_weight"])) and float(s["loss_weight"]) > 0]


def weights_settle(steps: list[dict]) -> int | None:
    """The index of the first observed step from which the cross-entropy's loss weight holds its last value, when
    it changed by :data:`CHANGE` x or more over the observed steps, per row too (``steps``: the probe's observed
    steps, each with its ``step`` index, ``loss_weight`` and ``rows``); None otherwise."""
    read = _weights(steps)
    if len(read) < 3:
        return None
    weights = [w for _, w, _ in read]
    per_row = [w / r for _, w, r in read]
    if max(weights) < CHANGE * min(weights) or max(per_row) < CHANGE * min(per_row):
        return None
    last = weights[-1]
    first = len(read) - 1
    while first > 0 and abs(weights[first - 1] - last) <= HOLD * last:
        first -= 1
    return read[first][0] if first > 0 else None


def reread_after_weights(curve: Verdict, steps: list[dict], losses: list[float],
                         read: Callable[[int], Verdict]) -> Verdict:
    """``curve``, the whole run's reading, or, where it reads "too high", "high" or "too low" and the loss's weight
    changed during the run (:func:`weights_settle`), ``read(start)``'s reading of the steps from where the weight
    holds its last value, where that reading passes (or is info)."""
    if not str(curve.value).startswith(_READ_AGAIN):
        return curve
    start = weights_settle(steps)
    if start is None or not 0 < start <= len(losses) - READ_LEAST:
        return curve
    weights = [w for _, w, _ in _weights(steps)]
    before = [v for v in losses[:start + 1] if math.isfinite(v)]
    if losses and math.isfinite(losses[0]) and losses[0] > 0 and before and \
            max(before) >= EXPLAINED * max(weights) / min(weights) * losses[0]:
        return curve  # the loss rose far beyond what the weight's change explains: the rate's doing
    later = read(start)
    if later.status not in ("pass", "info"):  # a rate too high (or too low) shows once the weights hold too
        return curve
    return replace(later, value=f"from step {start + 1} on, where the loss's weight holds its last value (steps "
                                f"{start + 1}-{len(losses)}; before, a schedule changed the cross-entropy's weight "
                                f"and the loss with it, not the rate): {later.value}")
