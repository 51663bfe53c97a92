"""The ``loop: learning rate applied`` verdict: the rate the optimizer applied at each step, read for a schedule
stepped at the wrong rate. A per-epoch scheduler stepped per batch collapses the rate early (StepLR, MultiStepLR);
a per-batch one stepped per epoch only rises, in a few jumps. A schedule with warm restarts comes back up: no
collapse.
"""

from __future__ import annotations

import math

from trainwell.doctor.loop_probe import LoopProbe
from trainwell.doctor.verdict import Verdict

#: the rate at or below this share of its peak has collapsed (two x0.1 milestones land exactly on it)
COLLAPSED = 0.01

_PER_EPOCH_ADVICE = ("a per-epoch scheduler stepped per batch? Call scheduler.step() once per epoch, or size it "
                     "in steps")


def lr_schedule(probe: LoopProbe) -> Verdict:
    """The learning rate the optimizer applied, step by step, of every param group; the first group whose
    schedule is off is named."""
    name = "loop: learning rate applied"
    if not [v for v in probe.lrs if math.isfinite(v)]:
        return Verdict(name, "skip", "skipped: the optimizer never stepped", "-", "")
    width = max((len(row) for row in probe.group_lrs), default=0)  # groups may be added mid-run
    groups = [[row[i] if i < len(row) else math.nan for row in probe.group_lrs] for i in range(width)] \
        if probe.group_lrs else [probe.lrs]
    verdicts = [_group_schedule(name, [v for v in lrs if math.isfinite(v)], i if len(groups) > 1 else None)
                for i, lrs in enumerate(groups)]
    worst = next((v for v in verdicts if v.status != "pass"), verdicts[0])
    if len(groups) > 1 and worst.status == "pass":
        rates = ", ".join(f"{g[-1]:.3g}" for g in groups if g)
        return Verdict(name, "pass", f"{worst.value}; {len(groups)} param groups at {rates} at the last step", "-")
    return worst


def _group_schedule(name: str, lrs: list[float], group: int | None) -> Verdict:
    """The schedule verdict of one param group's rates (``group``: its index when there are several)."""
    if not lrs:
        return Verdict(name, "pass", "no finite rate", "-")
    where = f"param group {group}: " if group is not None else ""
    peak = max(lrs)
    value = f"{lrs[0]:.3g} at step 1 -> {lrs[-1]:.3g} at step {len(lrs)} (peak {peak:.3g})"
    floor = COLLAPSED * peak * (1 + 1e-9)  # the milestones' product in floating point
    low = next((i for i, v in enumerate(lrs) if v <= floor and i > lrs.index(peak)), None)
    # a schedule with warm restarts (CosineAnnealingWarmRestarts per batch) comes back up: not a collapse
    if peak > 0 and low is not None and low < len(lrs) // 2 and max(lrs[low:]) < 0.1 * peak:
        return Verdict(name, "warn", f"{where}collapsed to 1% of its peak or below at step {low + 1} of "
                       f"{len(lrs)}: " + value, "a schedule spread over the run",
                       "the rate vanishes early: " + _PER_EPOCH_ADVICE)
    rising = all(b >= a for a, b in zip(lrs, lrs[1:], strict=False)) and lrs[-1] >= 2 * lrs[0] > 0
    if len(lrs) >= 20 and rising and len(set(lrs)) <= max(2, len(lrs) // 4):  # a few jumps: epochs
        return Verdict(name, "warn", f"{where}still rising at the last step, in {len(set(lrs)) - 1} jumps: " + value,
                       "a warm-up that ends, then the schedule's decay", "the rate only rose, a few times over the "
                       "run: a per-batch schedule (OneCycleLR, warm-up) stepped once per epoch? Call "
                       "scheduler.step() after every optimizer.step(), or size it in epochs")
    return Verdict(name, "pass", value, "-")
