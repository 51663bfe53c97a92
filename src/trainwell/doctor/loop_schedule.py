"""The ``loop: learning rate applied`` verdict: the rate the optimizer applied at each step, read for a schedule
stepped at the wrong rate. A per-epoch scheduler stepped per batch collapses the rate early (StepLR, MultiStepLR)
or swings it between its peak and 0 every few steps (CosineAnnealingLR(T_max=epochs); also a cosine sized in
optimizer steps but stepped once per accumulated micro-batch, which passes its end and climbs back); a per-batch
one stepped per epoch only rises, in a few jumps, and is still rising at the end (a warm-up that ended and then
held its rate is not), or (OneCycleLR, which keeps ``max_lr`` in each param group) stays far below its peak. A
schedule with warm restarts jumps back up: no swing; nor is a climb that a new scheduler began (one per run of a
sweep, its warm-up). A collapse that ReduceLROnPlateau's rule, replayed on the
training losses, reproduces cut for cut is that scheduler stepped every batch on the training loss. A rate of 0 on
every group's first steps that then jumps to its peak is a warm-up by integer division
(:mod:`~trainwell.doctor.floored_warmup`); a per-step warm-up that never reaches its rate within the run is
:mod:`~trainwell.doctor.endless_warmup`. A rate below 0 (a linear decay's factor ``1 - step / n`` run past ``n``)
is named first: every step after it climbs the gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from trainwell.doctor.endless_warmup import endless_warmup
from trainwell.doctor.floored_warmup import floored_warmup
from trainwell.doctor.loop_probe import LoopProbe
from trainwell.doctor.uncapped_warmup import uncapped_warmup
from trainwell.doctor.verdict import Verdict

#: the rate at or below this share of its peak has collapsed (two x0.1 milestones land exactly on it)
COLLAPSED = 0.01
#: the peak within this share of the base rate squared reads as a schedule function that returns the rate
SQUARED_TOLERANCE = 0.02
#: a LambdaLR function whose values reach this returns a factor, not a rate (the rate is read at lr 0.1 or below)
FACTOR_PEAK = 0.5
#: a per-batch schedule whose rate changes no more often than every this many steps is stepped per epoch
PLATEAU = 10

_PER_EPOCH_ADVICE = ("a per-epoch scheduler stepped per batch? Call scheduler.step() once per epoch, or size it "
                     "in steps")

_CUT_ADVICE = ("the schedule cut the rate below 1% of its start before mid-run, at epoch ends (it is stepped per "
               "epoch): a ReduceLROnPlateau with a short patience on a noisy validation loss? Raise its patience, "
               "set min_lr, or stop early instead of training on at a vanishing rate")


def lr_schedule(probe: LoopProbe, losses: list[float] | None = None,
                factor_peak: Callable[[int], float | None] | None = None, built: list[int] | None = None,
                cut_advice: Callable[[], str | None] | None = None) -> Verdict:
    """The learning rate the optimizer applied, step by step, of every param group; the first group whose
    schedule is off is named (``losses``: the training loss of every step, replayed through ReduceLROnPlateau's
    rule; ``factor_peak``: the largest factor a group's LambdaLR function returns, None when not known;
    ``built``: the steps at which a new scheduler took over the optimizer; ``cut_advice``: the advice for a rate
    collapsed at epoch ends by a known scheduler, None to give ReduceLROnPlateau's)."""
    name = "loop: learning rate applied"
    if not [v for v in probe.lrs if math.isfinite(v)]:
        return Verdict(name, "skip", "skipped: the optimizer never stepped", "-", "")
    width = max((len(row) for row in probe.group_lrs), default=0)  # groups may be added mid-run
    groups = [[row[i] if i < len(row) else math.nan for row in probe.group_lrs] for i in range(width)] \
        if probe.group_lrs else [probe.lrs]
    peaks, epochs = probe.max_lrs, set(probe.validation_steps)
    still = _zero_rate(name, groups, probe.optimizer) or floored_warmup(name, groups, epochs)
    if still is not None:
        return still
    verdicts = [_squared(name, [v for v in lrs if math.isfinite(v)], i if len(groups) > 1 else None,
                         probe.initial_lrs[i] if i < len(probe.initial_lrs) else None,
                         (lambda i=i: factor_peak(i)) if factor_peak else None,
                         (lambda i=i: _factor_elsewhere(factor_peak, i, len(groups))) if factor_peak else None) or
                uncapped_warmup(name, [v for v in lrs if math.isfinite(v)], i if len(groups) > 1 else None,
                                probe.initial_lrs[i] if i < len(probe.initial_lrs) else None,
                                (lambda i=i: factor_peak(i)) if factor_peak else None) or
                endless_warmup(name, [v for v in lrs if math.isfinite(v)], i if len(groups) > 1 else None,
                               probe.initial_lrs[i] if i < len(probe.initial_lrs) else None,
                               (lambda i=i: factor_peak(i)) if factor_peak else None) or
                _group_schedule(name, [v for v in lrs if math.isfinite(v)], i if len(groups) > 1 else None,
                                peaks[i] if i < len(peaks) else None, epochs, losses, built, cut_advice)
                for i, lrs in enumerate(groups)]
    worst = next((v for v in verdicts if v.status != "pass"), verdicts[0])
    if len(groups) > 1 and worst.status == "pass":
        rates = ", ".join(f"{g[-1]:.3g}" for g in groups if g)
        return Verdict(name, "pass", f"{worst.value}; {len(groups)} param groups at {rates} at the last step", "-")
    return worst


def _zero_rate(name: str, groups: list[list[float]], optimizer) -> Verdict | None:
    """A warn when a param group holding trainable tensors had a rate of exactly 0 at every step: its parameters
    get gradients and never change (a backbone's rate typed as 0, a multiplier that is 0)."""
    held = getattr(optimizer, "param_groups", None) or []
    for i, lrs in enumerate(groups):
        rates = [v for v in lrs if math.isfinite(v)]
        if i >= len(held) or not rates or any(v != 0 for v in rates):
            continue
        trainable = [p for p in held[i]["params"] if getattr(p, "requires_grad", False)]
        if not trainable:
            continue
        where = f"param group {i}" if len(groups) > 1 else "the optimizer's param group"
        count = sum(p.numel() for p in trainable)
        return Verdict(name, "warn", f"{where} ({len(trainable)} trainable tensors, {count:,} values) has a rate of "
                       f"0 at all {len(rates)} steps: its parameters never change", "a rate above 0 in every group "
                       "that holds trainable parameters", "set the group's lr (a backbone's is usually 10-100x below "
                       "the head's, not 0); to freeze those layers on purpose, set requires_grad_(False) on them")
    return None


def _factor_elsewhere(factor_peak: Callable[[int], float | None], group: int, groups: int) -> bool:
    """Whether the LambdaLR function of a param group other than ``group`` returns a factor (its largest value
    reaches :data:`FACTOR_PEAK`)."""
    return any((factor_peak(other) or 0.0) >= FACTOR_PEAK for other in range(groups) if other != group)


def _squared(name: str, lrs: list[float], group: int | None, initial_lr: float | None,
             factor_peak: Callable[[], float | None] | None = None,
             factor_elsewhere: Callable[[], bool] | None = None) -> Verdict | None:
    """A warn when the rate's peak is the scheduler's base rate squared (within 2%, a base of 0.1 or below): a
    ``LambdaLR`` whose function returns the rate, ``lr * factor``, which the scheduler multiplies by ``lr`` again.
    None when the group's LambdaLR function (``factor_peak``: its largest value, read past the watched steps)
    returns a factor: one that reaches :data:`FACTOR_PEAK` (a watch that ends in a long warm-up sees its rate
    pass lr squared on the way up); None too when another group's function returns a factor
    (``factor_elsewhere``): one function per group, this one scaled on purpose (a backbone's ``0.1 * factor``
    beside the head's ``factor``), where ``lr * factor`` is written once for every group."""
    if not lrs or initial_lr is None or not 0 < initial_lr <= 0.1:
        return None
    peak = max(lrs)
    if abs(peak - initial_lr**2) > SQUARED_TOLERANCE * initial_lr**2:
        return None
    function_peak = factor_peak() if factor_peak is not None else None
    if function_peak is not None and function_peak >= FACTOR_PEAK:
        return None
    if factor_elsewhere is not None and factor_elsewhere():
        return None
    where = f"param group {group}: " if group is not None else ""
    return Verdict(name, "warn", f"{where}the rate peaks at {peak:.3g}, the optimizer's lr {initial_lr:.3g} squared: "
                   f"{lrs[0]:.3g} at step 1 -> {lrs[-1]:.3g} at step {len(lrs)}", "a peak near the optimizer's lr",
                   "LambdaLR multiplies the optimizer's lr by what its function returns: return the factor alone "
                   "(e.g. step / warmup), not lr * factor")


def _group_schedule(name: str, lrs: list[float], group: int | None, max_lr: float | None = None,
                    epochs: set[int] | None = None, losses: list[float] | None = None,
                    built: list[int] | None = None, cut_advice: Callable[[], str | None] | None = None) -> Verdict:
    """The schedule verdict of one param group's rates (``group``: its index when there are several; ``max_lr``:
    the peak a OneCycleLR schedule holds in the group; ``epochs``: the steps that came first after a
    ``w.validate`` call; ``losses``: the training loss of every step; ``built``: the steps at which a new
    scheduler took over; ``cut_advice``: see :func:`lr_schedule`)."""
    if not lrs:
        return Verdict(name, "pass", "no finite rate", "-")
    where = f"param group {group}: " if group is not None else ""
    peak = max(lrs)
    value = f"{lrs[0]:.3g} at step 1 -> {lrs[-1]:.3g} at step {len(lrs)} (peak {peak:.3g})"
    below = next((i for i, v in enumerate(lrs) if v < 0), None)
    if below is not None and peak > 0:
        return Verdict(name, "warn", f"{where}went below 0 at step {below + 1} of {len(lrs)} ({lrs[below]:.3g}; "
                       f"lowest {min(lrs):.3g}): " + value, "a rate of 0 or more at every step",
                       "a negative rate steps up the gradient and the loss climbs: a decay (LambdaLR's 1 - step / n) "
                       "run past its end, n sized for an epoch? Floor the factor at 0 (max(0.0, 1 - step / n)) and "
                       "size n in the steps the whole run takes")
    floor = COLLAPSED * peak * (1 + 1e-9)  # the milestones' product in floating point
    low = next((i for i, v in enumerate(lrs) if v <= floor and i > lrs.index(peak)), None)
    # a schedule with warm restarts (CosineAnnealingWarmRestarts per batch) comes back up: not a collapse
    if peak > 0 and low is not None and low < len(lrs) // 2 and max(lrs[low:]) < 0.1 * peak:
        value = f"{where}collapsed to 1% of its peak or below at step {low + 1} of {len(lrs)}: " + value
        if _cut_at_epochs(lrs[: low + 1], epochs or set()):
            return Verdict(name, "warn", value + "; cut only at the validations (epoch ends)",
                           "a schedule spread over the run", (cut_advice and cut_advice()) or _CUT_ADVICE)
        plateau = _plateau_per_batch(lrs[: low + 1], losses or [])
        if plateau is not None:
            factor, patience = plateau
            return Verdict(name, "warn", f"{value}; cut x{factor:.3g} after every {patience + 1} steps without a "
                           "new lowest training loss", "a schedule spread over the run",
                           f"ReduceLROnPlateau(factor={factor:.3g}, patience={patience}) stepped every batch: step it "
                           "once per epoch on the validation loss")
        return Verdict(name, "warn", value, "a schedule spread over the run",
                       "the rate vanishes early: " + _PER_EPOCH_ADVICE)
    swings = _swings(lrs, floor, built or []) if peak > 0 else []
    # 3 climbs back, or 2 that each followed a fall from the peak (a warm-up's climb from ~0 is not one): a cosine
    # sized in optimizer steps but stepped once per accumulated micro-batch passes its end k / 2 times
    fell = [i for i in swings if _fell_before(lrs, i, floor, peak)]
    if len(swings) >= 3 or len(fell) >= 2:
        period = (swings[-1] - swings[0]) / (len(swings) - 1)
        return Verdict(name, "warn", f"{where}swung from 1% of its peak or below back up to its peak {len(swings)} "
                       f"times, every {period:.3g} steps: " + value, "a schedule spread over the run",
                       "the rate falls to 0 and climbs back every few steps: a cosine sized in epochs "
                       "(CosineAnnealingLR(T_max=epochs)) stepped per batch, or one sized in optimizer steps stepped "
                       "per accumulated micro-batch? Call scheduler.step() once per epoch (or once per "
                       "optimizer.step()), or set T_max to the number of times it is stepped")
    stuck = _stuck_one_cycle(lrs, max_lr)
    if stuck is not None:
        return Verdict(name, "warn", f"{where}{stuck}: " + value, "the rate reaching max_lr, changing every step",
                       "OneCycleLR is a per-batch schedule: call scheduler.step() after every optimizer.step() "
                       "(size it with total_steps = epochs x batches per epoch)")
    rising = all(b >= a for a, b in zip(lrs, lrs[1:], strict=False)) and lrs[-1] >= 2 * lrs[0] > 0
    if len(lrs) >= 20 and rising and len(set(lrs)) <= max(2, len(lrs) // 4) and _still_rising(lrs):  # epochs
        return Verdict(name, "warn", f"{where}still rising at the last step, in {len(set(lrs)) - 1} jumps: " + value,
                       "a warm-up that ends, then the schedule's decay", "the rate only rose, a few times over the "
                       "run: a per-batch schedule (OneCycleLR, warm-up) stepped once per epoch? Call "
                       "scheduler.step() after every optimizer.step(), or size it in epochs")
    return Verdict(name, "pass", value, "-")


def _cut_at_epochs(lrs: list[float], epochs: set[int]) -> bool:
    """Every change of the rate came at the first step after a validation (an epoch's end): a schedule stepped
    per epoch (ReduceLROnPlateau on the validation loss), not one stepped per batch."""
    changes = [i for i in range(1, len(lrs)) if lrs[i] != lrs[i - 1]]
    return bool(changes) and all(i in epochs for i in changes)


def _plateau_per_batch(lrs: list[float], losses: list[float]) -> tuple[float, int] | None:
    """ReduceLROnPlateau stepped on every batch's training loss: (factor, patience) under which its rule (mode
    'min', a relative threshold of 1e-4, no cooldown, changes under 1e-8 not made), replayed on the training
    losses, cuts the rate exactly where ``lrs`` was cut: 2 cuts or more, each by one factor, the first after
    ``patience + 1`` steps at least. None when no patience (below the shortest run between cuts) replays them."""
    changes = [i for i in range(1, len(lrs)) if lrs[i] != lrs[i - 1]]
    if len(changes) < 2 or len(losses) < len(lrs) - 1 or not lrs[0] > 0:
        return None
    factor = lrs[changes[0]] / lrs[changes[0] - 1]
    if not 0 < factor < 1 or any(not math.isclose(lrs[i] / lrs[i - 1], factor, rel_tol=1e-6) for i in changes):
        return None
    shortest = min(b - a for a, b in zip([0] + changes, changes, strict=False))
    for patience in range(min(shortest, 256)):
        if _replays(lrs, losses, factor, patience):
            return factor, patience
    return None


def _replays(lrs: list[float], losses: list[float], factor: float, patience: int) -> bool:
    """ReduceLROnPlateau(factor, patience)'s rule stepped after each step on its loss gives the rates ``lrs``."""
    lr, best, bad = lrs[0], math.inf, 0
    for loss, applied in zip(losses, lrs[1:], strict=False):
        if loss < best * (1 - 1e-4):
            best, bad = loss, 0
        else:
            bad += 1
        if bad > patience:
            lr, bad = (lr * factor if lr - lr * factor > 1e-8 else lr), 0
        if not math.isclose(lr, applied, rel_tol=1e-9):
            return False
    return True


def _still_rising(lrs: list[float]) -> bool:
    """The rate's last jump came no longer ago than the longest wait between its jumps: a schedule stepped once
    per epoch jumps at the last epoch's start. A warm-up that ended, then held its rate for longer, has finished."""
    changes = [i for i in range(1, len(lrs)) if lrs[i] != lrs[i - 1]]
    if not changes:
        return False
    waits = [b - a for a, b in zip([0] + changes, changes, strict=False)]
    return len(lrs) - changes[-1] <= max(waits)


def _swings(lrs: list[float], floor: float, built: list[int] = ()) -> list[int]:
    """The steps at which the rate, having fallen to ``floor`` (1% of its peak) or below, has climbed back to 90%
    of its peak by rising on each of 2 or more steps: a cosine that passed its end (stepped past T_max, it climbs
    back as smoothly as it fell). A warm restart jumps back up in one step and is not one; nor is a straight ramp
    (CyclicLR's triangle, a per-batch schedule by design), nor a climb that began with a new scheduler (a step in
    ``built``: a sweep's next run warming up)."""
    top = 0.9 * max(lrs)
    found, trough = [], None
    for i, v in enumerate(lrs):
        if v <= floor:
            trough = i
        elif trough is not None and v >= top:
            climb = lrs[trough : i + 1]
            if i - trough >= 2 and all(b > a for a, b in zip(climb, climb[1:], strict=False)) and \
                    not _linear(climb) and not any(trough < b <= i for b in built):
                found.append(i)
            trough = None
    return found


def _fell_before(lrs: list[float], i: int, floor: float, peak: float) -> bool:
    """Whether the climb that reached its top at step ``i`` started from a trough the rate fell to from its peak
    (90% of it or more, then ``floor`` or below): a cosine that passed its end, not a warm-up from ~0."""
    trough = max(j for j in range(i) if lrs[j] <= floor)
    return any(v >= 0.9 * peak for v in lrs[:trough])


def _linear(climb: list[float]) -> bool:
    """A climb of 3 or more steps by one increment (to rounding): CyclicLR's triangle. A cosine's increments grow,
    then shrink."""
    rises = [b - a for a, b in zip(climb, climb[1:], strict=False)]
    return len(rises) >= 3 and max(rises) - min(rises) <= 1e-6 * max(rises)


def _stuck_one_cycle(lrs: list[float], max_lr: float | None) -> str | None:
    """A OneCycleLR schedule (its ``max_lr``) stepped once per epoch: over 20 or more steps the rate changed at
    least once, only every ``PLATEAU`` or more steps, and stayed below half of max_lr (it starts at max_lr / 25)."""
    if not max_lr or len(lrs) < 20 or max(lrs) >= 0.5 * max_lr:
        return None
    changes = [i for i in range(1, len(lrs)) if lrs[i] != lrs[i - 1]]
    if not changes or min(b - a for a, b in zip([0] + changes, changes, strict=False)) < PLATEAU:
        return None
    return (f"OneCycleLR changed the rate {len(changes)} times in {len(lrs)} steps (every {changes[0]}) and it "
            f"peaked at {max(lrs) / max_lr:.0%} of max_lr {max_lr:.3g}")
