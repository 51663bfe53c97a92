"""Reading the learning rate off a per-step training-loss curve (cs231n, "babysitting the learning process").

A very high rate makes the loss rise or become NaN; a high one drops fast and then plateaus at a worse value; a
good one decreases steadily; a low one decreases slowly and nearly linearly, also by under the flat line's 5%
when that fall stands out of the noise and goes on to the end. The curve's noise reflects the batch
size: a plateau or a slow fall that the noise of the curve's means cannot tell from a curve levelling off is read
as such, not as a rate.
"""

from __future__ import annotations

import math

from trainwell.doctor.verdict import Verdict


def _centered_mean(values: list[float], window: int) -> list[float]:
    """Moving average over a centred window (shorter at the ends), via prefix sums: O(n)."""
    n, half = len(values), window // 2
    prefix = [0.0]
    for v in values:
        prefix.append(prefix[-1] + v)
    return [(prefix[min(n, i + half + 1)] - prefix[max(0, i - half)]) / (min(n, i + half + 1) - max(0, i - half))
            for i in range(n)]


def loss_curve_features(losses: list[float]) -> dict:
    """Numbers the diagnosis reads from a finite per-step loss curve of n steps (k = max(2, n // 10)):

    - ``head`` / ``tail``: mean of the first / last k losses (a mini-batch curve's single values are noise);
      ``rel_drop`` = (head - tail) / |head|.
    - ``half_share``: share of the drop reached at mid-run (exponential-like ~0.9, linear ~0.5);
      ``last_quarter_share``: share made in the last quarter (still falling fast = not converged).
    - ``noise``: RMS of loss minus its centred k-step mean over the second half, relative to the loss level.
      Mini-batch noise grows as the batch shrinks; it is reported, never used as a verdict on its own.
    - ``rise``: the largest upward excursion of the centred k-step mean above its running minimum, relative to
      ``head``: batch noise averages out over k steps, a too-high rate's bouncing does not.
    - ``late_fall`` / ``late_fall_se``: the fall over the last three quarters of the run along the least-squares line
      through them, and its standard error from the per-step noise (sigma * sqrt(12 / m) over m steps): whether
      the loss still falls after its first quarter, where a curve that levels off early has made its drop.
    """
    n = len(losses)
    k = max(2, n // 10)
    smooth = _centered_mean(losses, k)
    head, tail = sum(losses[:k]) / k, sum(losses[-k:]) / k
    drop = head - tail
    scale = max(abs(head), 1e-12)

    def share(i: int) -> float:
        return (head - smooth[i]) / drop if drop > 0 else 0.0

    inner = smooth[k // 2 : max(k // 2 + 1, n - k // 2)]  # full windows only: the shorter end ones are noisier
    low, rise = inner[0], 0.0
    for v in inner:
        low = min(low, v)
        rise = max(rise, v - low)
    late = range(n // 2, n)
    level = sum(smooth[i] for i in late) / len(late)
    noise = (sum((losses[i] - smooth[i]) ** 2 for i in late) / len(late)) ** 0.5 / max(abs(level), 1e-12)
    late_fall, late_fall_se = _late_fall(losses[n // 4 :], noise * max(abs(level), 1e-12))
    return {"first": losses[0], "peak": max(losses), "peak_excess": _peak_excess(losses, smooth, k),
            "head": head, "tail": tail, "start": head, "end": tail,
            "k": k, "noise_abs": noise * max(abs(level), 1e-12), "rise_abs": rise,
            "rel_drop": drop / scale, "half_share": share(n // 2),
            "last_quarter_share": (smooth[(3 * n) // 4] - tail) / drop if drop > 0 else 0.0,
            "noise": noise, "rise": rise / scale, "rise_over_drop": rise / drop if drop > 0 else math.inf,
            "late_fall": late_fall, "late_fall_se": late_fall_se, "steps": n}


def _late_fall(values: list[float], sigma: float) -> tuple[float, float]:
    """The fall over ``values`` along their least-squares line (slope x (m - 1)), and its standard error for
    independent per-step noise of size ``sigma``."""
    m = len(values)
    if m < 2:
        return 0.0, math.inf
    t_mean, v_mean = (m - 1) / 2, sum(values) / m
    sxx = m * (m * m - 1) / 12
    slope = sum((i - t_mean) * (v - v_mean) for i, v in enumerate(values)) / sxx
    return -slope * (m - 1), sigma * (m - 1) / math.sqrt(sxx)


def _peak_excess(losses: list[float], smooth: list[float], k: int) -> float:
    """How far the highest loss stands above the curve's level there (the median of the k steps around it that
    are below a tenth of it: a divergence holds for several steps), in units of the curve's typical per-step
    deviation (the median over all steps of |loss - its k-step mean|, relative to that mean). Medians keep both
    out of the spike's reach: a divergence spike on a mini-batch curve stands hundreds of such units out, while
    single-example losses (batch size 1: squared errors, a misclassified example's cross-entropy) are
    heavy-tailed and reach ~80 of them by chance over thousands of steps."""
    n, i = len(losses), max(range(len(losses)), key=losses.__getitem__)
    around = sorted(v for v in losses[max(0, i - k // 2) : i] + losses[i + 1 : i + k // 2 + 1]
                    if v <= losses[i] / SPIKE) or [losses[i]]
    level = around[len(around) // 2]
    spread = sorted(abs(v - m) / max(abs(m), 1e-12) for v, m in zip(losses, smooth, strict=True))[n // 2]
    return (losses[i] - level) / max(abs(level), 1e-12) / max(spread, 1e-12)


#: Thresholds, calibrated on SGD runs of a 2-64-64-3 ReLU MLP on spirals (seeds 0-2; batch 8, 32 and full;
#: lr 1e-3 .. 30; dead-ReLU nets): see benchmarks/RESULTS.md, "LR diagnosis calibration".
MIN_STEPS = 10
FLAT_DROP = 0.05  # the last tenth < 5% below the first tenth: no progress
JUMP_SIGMAS = 3.0  # the first tenth's mean > 3 noise sigmas above the first loss: the loss jumped up at once
ROSE = 0.05  # the last tenth's mean ends > 5% (and > 3 noise sigmas) above the first loss or the first tenth
FLAT_BOUNCE = 0.04  # flat, but the k-step mean climbs back by > 4% of the starting level: not batch noise
BOUNCE_RISE = 0.1  # with progress: the k-step mean climbs back by > 10% of the starting level ...
OSCILLATION = 0.5  # ... and by more than half of the total drop
SPIKE = 10.0  # a single loss > 10x the first one ...
SPIKE_NOISE = 150.0  # ... standing > 150 typical per-step deviations above the curve's level there
PLATEAU_HALF, PLATEAU_LEVEL = 0.97, 0.3
LOW_HALF, LOW_DROP, LOW_BEND, LOW_LAST_QUARTER = 0.6, 0.5, 0.85, 0.1
#: a small drop (< LOW_DROP), or one under LOW_HALF by mid-run, reads "too low" only if its second half falls by > 3
#: noise sigmas of the k-step means more than a still-bending curve's (LOW_BEND), or if the drop is under twice the
#: flat line; else the noise hides the shape (a small drop alone is no sign: a loss may level off far above 0)
LATE_FALL_SIGMAS, LEVEL_MIN_DROP = 3.0, 2 * FLAT_DROP
#: a drop under FLAT_DROP is still progress, read "too low", where it is over SLOW_MIN_DROP (10x the rate would carry
#: it past LEVEL_MIN_DROP, within the 3-10x the advice names), stands out of the noise of the two k-step means that
#: measure it by LATE_FALL_SIGMAS, and still falls late (under LOW_BEND of it by mid-run, or over LOW_LAST_QUARTER of
#: it in the last quarter, and over LATE_FALL_SIGMAS standard errors after the first quarter): a slow steady fall
SLOW_MIN_DROP = LEVEL_MIN_DROP / 10
SLOW_SMALL_FALL = f"too low: a slow, steady fall under {FLAT_DROP:.0%}"
#: a plateau (over PLATEAU_HALF of the drop by mid-run) reads "high" only if the share made by mid-run stands above
#: a still-bending curve's (LOW_BEND) by 2 noise sigmas of the k-step means that measure it; else the noise hides
#: whether the loss went on falling, and the curve is read as levelled off
PLATEAU_SIGMAS = 2.0


def learning_rate_diagnosis(losses: list[float], batch_size: int | None = None,
                            floor: float | list[float] = 0.0, bound: bool = False,
                            untrained: float | None = None) -> Verdict:
    """Classify a per-step training-loss curve: too high / high / good / too low, or flat (no progress).

    Following cs231n ("babysitting the learning process"): very high -> the loss rises, spikes or becomes NaN;
    high -> a fast drop, then a plateau at a worse value, or a bouncing curve; good -> a steady decrease that
    flattens; low -> a slow, near-linear decrease. A plateau or a slow decrease that the batch noise cannot tell from
    a curve levelling off reads "levelled off" (info). A curve that does not move at all is its own verdict (a dead
    network looks like that at any rate). Fewer than 10 steps or a non-finite loss never pass.

    Args:
        losses: the training loss of every step, in order (mini-batch or full-batch).
        batch_size: only quoted in the verdict (the curve's noise reflects it).
        floor: the lowest value the loss can reach (label smoothing's targets' entropy), or each step's (mixed
            targets' entropy, which changes batch to batch): the drop is measured towards it, not towards 0.
        bound: the floor is only a lower bound of the loss's lowest value (a VAE's reconstruction entropy, below
            which its KL term keeps the loss by an amount not known): a drop measured towards it is smaller than
            the real one, so a small drop alone is not read as a low rate; the curve's shape still is.
        untrained: the loss an untrained model scores, known without batch noise (ln C for a mean cross-entropy
            over C classes, whose first loss is a noisy draw of it): a curve whose first tenth stands above it (and
            above the first loss) by 3 noise sigmas of that tenth's mean and by over 5% of it, and that ends no
            lower than it, jumped up at once and got worse than an untrained model (a too-high rate). Used with a
            constant floor only.

    Returns:
        A :class:`Verdict`; its value starts with the label ("too high", "high", "good", "too low", "flat",
        "levelled off", "noisy", "unknown").

    Example:
        >>> import math
        >>> learning_rate_diagnosis([2.3 * math.exp(-t / 40) + 0.05 for t in range(400)]).value[:4]
        'good'
    """
    name = "learning rate (loss curve)"
    losses = [float(v) for v in losses]
    bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    if bad and bad[0] == 0:
        return Verdict(name, "fail", f"not finite from the start: loss {losses[0]} at step 0, before any update",
                       "a finite loss", "a loss that is not finite before the first update is not the learning "
                       "rate's doing: look for NaN/Inf in the inputs or targets, and log(0) or division by zero in "
                       "the model or loss")
    if bad:
        return Verdict(name, "fail", f"too high: loss became {losses[bad[0]]} at step {bad[0]}", "a steady decrease",
                       "lower the learning rate (by 3-10x); if it persists, look for log(0), division by zero or "
                       "an exploding layer")
    if len(losses) < MIN_STEPS:
        return Verdict(name, "warn", f"unknown: only {len(losses)} steps", f">= {MIN_STEPS} steps",
                       "too few steps to read the curve: train longer (or record every step) before judging the LR")
    floors = floor if isinstance(floor, list) else [floor] * len(losses)
    f = loss_curve_features([v - lo for v, lo in zip(losses, floors, strict=True)])
    reference = None if untrained is None or len(set(floors)) > 1 else untrained - floors[0]
    return _read_curve(name, f, _describe_curve(f, batch_size, sum(floors) / len(floors), bound), bound, floors[0],
                       reference)


def _describe_curve(f: dict, batch_size: int | None, floor: float = 0.0, bound: bool = False) -> str:
    """The verdict's value: start and end level, drop (or rise) above ``floor`` (a lower ``bound`` of it), noise."""
    noise_note = f"; batch size {batch_size}" if batch_size else ""
    if f["tail"] <= f["head"]:
        change = f"{_drop(f, floor, bound)}, {_mid_run(f, floor)}"
    else:  # a rise is not a "drop" (a clipped share of it would read "100%")
        rise = (f["tail"] - f["head"]) / max(abs(f["head"]), 1e-12)
        change = f"{rise:.0%} rise" if rise < 10 else f"a rise to {f['tail'] / max(abs(f['head']), 1e-12):.3g}x"
    value = (f"start {f['head'] + floor:.3g} -> end {f['tail'] + floor:.3g} ({change}); noise {f['noise']:.0%} of "
             f"the loss level{' above the floor' if floor else ''} (its steps' scatter around a running mean, second "
             f"half){noise_note}")
    return value


def _drop(f: dict, floor: float, bound: bool = False) -> str:
    """The drop as a share of the start's height above the floor; a drop past the floor (a loss that is or turns
    negative, or goes below its floor) is no share of it and is given as a size."""
    towards = f" towards the {'lower bound' if bound else 'floor'} {floor:.3g}" if floor else ""
    if f["rel_drop"] <= 1 + 1e-9 and f["head"] >= 0:
        return f"{f['rel_drop']:.0%} drop{towards}"
    return f"a drop of {f['head'] - f['tail']:.3g}, " + (f"past the floor {floor:.3g}" if floor else "below 0")


def _mid_run(f: dict, floor: float) -> str:
    """How much of the drop was made by mid-run, as a share in [0, 100%]; a mid-run level below the end's (the
    loss rose back) or above the start's (it rose first) is said in words, with that level."""
    share = f["half_share"]
    mid = f["head"] - share * (f["head"] - f["tail"]) + floor
    if share > 1 + 1e-9:
        return f"the loss was lower at mid-run ({mid:.3g}) than at the end"
    if share < -1e-9:
        return f"the loss was higher at mid-run ({mid:.3g}) than at the start"
    return f"{share:.0%} of it by mid-run"


def _read_curve(name: str, f: dict, value: str, bound: bool = False, first_floor: float = 0.0,
                untrained: float | None = None) -> Verdict:
    """The verdict of :func:`learning_rate_diagnosis` from a curve's features, rule by rule (``bound``: the drop is
    measured towards a lower bound of the floor, so a small one is not slow by itself; ``first_floor``: the first
    step's floor, added back to quote the first loss; ``untrained``: an untrained model's loss above that floor)."""
    lower = "lower the learning rate (by 3-10x)"
    # a single loss carries the full step noise, a mean of k losses 1/sqrt(k) of it: rises must exceed 3 sigma,
    # and a bounce of the k-step mean 8 sigma / sqrt(k) (moving means of batch noise reach ~6 over 400 steps)
    sigma = f["noise_abs"]
    bounce = f["rise_abs"] > 8 * sigma / math.sqrt(f["k"])
    rose = (f["tail"] > f["head"] + max(ROSE * abs(f["head"]), 3 * sigma / math.sqrt(f["k"]))
            or f["tail"] > f["first"] + max(ROSE * abs(f["first"]), 3 * sigma))
    if rose or (f["peak"] > SPIKE * abs(f["first"]) and f["peak_excess"] > SPIKE_NOISE):
        what = "the loss rose" if rose else f"the loss spiked to {f['peak']:.3g}"
        return Verdict(name, "fail", f"too high: {what}; " + value, "a steady decrease", lower)
    # a curve that jumped up at once (its first tenth above the untrained loss by more than a single loss's noise)
    # and, though falling since, ends no lower than its first loss: the first updates overshot
    if f["tail"] >= f["first"] and f["rel_drop"] >= FLAT_DROP and f["head"] - f["first"] > JUMP_SIGMAS * sigma:
        return Verdict(name, "fail", "too high: the loss jumped up at once and ends no lower than its first value "
                       f"({f['first'] + first_floor:.3g}); " + value, "a steady decrease", lower)
    # the same against an untrained model's loss known without noise (ln C): the first tenth's mean need only stand
    # out of its own noise, sigma / sqrt(k), above it and above the first loss, and, as a rise must, by over ROSE of
    # it (a network memorizing labels its inputs do not determine, at a healthy rate, lifts the loss a few percent
    # above ln C as its outputs spread), and the end sits no lower than it
    if untrained is not None and f["tail"] >= untrained and f["head"] - max(f["first"], untrained) > \
            max(ROSE * abs(untrained), JUMP_SIGMAS * sigma / math.sqrt(f["k"])):
        return Verdict(name, "fail", "too high: the loss jumped up at once and ends no lower than an untrained "
                       f"model's ({untrained + first_floor:.3g}); " + value, "a steady decrease", lower)
    # no progress: < 5% below the first tenth (a single first loss is noise: a drop is measured from the tenth)
    if f["rel_drop"] < FLAT_DROP:
        if bounce and f["rise"] > FLAT_BOUNCE:
            return Verdict(name, "fail", "too high: the loss bounces without progress; " + value,
                           "a steady decrease", lower)
        if _slow_steady_fall(f):
            return Verdict(name, "warn", f"{SLOW_SMALL_FALL}; " + value, "most of the drop early, then a slowing "
                           "decrease", "raise the learning rate (by 3-10x)")
        return flat_verdict(name, value)
    if f["rise"] > BOUNCE_RISE and f["rise_over_drop"] > OSCILLATION:
        # the k-step mean climbs back by much of the drop: an oscillation only where it climbs by more than batch
        # noise lets it (bounce); a noisy healthy curve's moving mean wanders by up to ~5 noise sigmas of two
        # such means, sigma * sqrt(2 / k), in a run, and its shape then tells neither a high nor a low rate
        if bounce:
            return Verdict(name, "warn", "too high: the loss oscillates; " + value, "a steady decrease",
                           "lower the learning rate or enlarge the batch")
        return _within_noise(name, value, f)
    if f["half_share"] > PLATEAU_HALF and f["tail"] > PLATEAU_LEVEL * f["first"]:
        # the mid-run level and the end's are k-step means: the share between them is known to sigma * sqrt(2 / k)
        spread = sigma * math.sqrt(2 / f["k"])
        if (f["half_share"] - LOW_BEND) * (f["head"] - f["tail"]) > PLATEAU_SIGMAS * spread:
            return Verdict(name, "warn", "high: fast drop, then a plateau; " + value,
                           "a steady decrease to a low value", "lower the learning rate, or decay it on the plateau")
        return _noisy_plateau(name, value, f, spread)
    # the second half falls by more than a still-bending curve's (LOW_BEND of the drop by mid-run) leaves it: "too
    # low" only where that excess fall stands out of the noise of the k-step means that measure it, or where the
    # curve barely left the flat line (a drop under LEVEL_MIN_DROP)
    spread = sigma * math.sqrt(2 / f["k"])
    excess = (LOW_BEND - f["half_share"]) * (f["head"] - f["tail"])
    slow = excess > LATE_FALL_SIGMAS * spread or f["rel_drop"] < LEVEL_MIN_DROP
    if f["half_share"] < LOW_HALF:
        # under 60% of the drop by mid-run: near-linear, unless the noise hides a bend
        return _too_low(name, value) if slow else _slow_within_noise(name, value, excess, spread)
    falls_late = f["half_share"] < LOW_BEND or f["last_quarter_share"] > LOW_LAST_QUARTER
    if f["rel_drop"] < LOW_DROP and falls_late and not bound:
        # a small drop towards the floor (0 unless given: a lowest value the loss need not reach, as a cross-entropy
        # on noisy labels does not) whose second half still falls: its smallness alone is no sign of a low rate;
        # its shape is, where the second half's fall exceeds a bending curve's beyond the noise
        if slow:
            return _too_low(name, value)
        late_drop = (1 - f["half_share"]) * (f["head"] - f["tail"])
        if late_drop > LATE_FALL_SIGMAS * spread:
            return _bending_within_noise(name, value, f, spread)
        return Verdict(name, "info", f"levelled off: a small drop, then no fall beyond the batch noise "
                       f"({late_drop:.2g} in the second half, noise {spread:.2g}); " + value,
                       "a steady decrease", "the curve does not show a rate that is too low (a too-low rate is "
                       "still falling at the end): if the loss should go lower, look at what the model can read "
                       "(inputs that carry the signal, token positions, capacity) before the learning rate")
    return Verdict(name, "pass", "good: steady decrease; " + value, "a steady decrease")


def flat_verdict(name: str, value: str) -> Verdict:
    """The "flat: no progress" verdict on a curve described by ``value``."""
    return Verdict(name, "warn", "flat: no progress; " + value, f">= {FLAT_DROP:.0%} drop",
                   "the loss does not move: look for dead units or zero gradients (the doctor's monitors), a "
                   "detached graph or frozen parameters; if none, the learning rate is far off: try 10x "
                   "smaller and 10x larger")


def _slow_steady_fall(f: dict) -> bool:
    """A drop under the flat line's 5% that is a slow, steady fall, not a flat line: cs231n reads a low rate from a
    slow, near-linear decrease, whatever its size. The drop must be over 1% (10x the rate would then carry a
    near-linear fall past 10%: the rate is within the 3-10x that the "too low" advice names; a fall of a few
    thousandths stays "flat", the rate being far off), stand out of the batch noise (3 noise sigmas of the two
    k-step means it is measured between: a flat line's noise does not draw it) and still fall late: under 85% of it
    by mid-run, or over 10% of it in the last quarter, and a fall over the last three quarters of the run, along
    their least-squares line, of over 3 standard errors (a curve that made its drop early and levelled off is not
    slow, and its noise alone does not make it look so)."""
    drop = f["head"] - f["tail"]
    spread = f["noise_abs"] * math.sqrt(2 / f["k"])
    falls_late = f["half_share"] < LOW_BEND or f["last_quarter_share"] > LOW_LAST_QUARTER
    still_falls = f["late_fall"] > LATE_FALL_SIGMAS * f["late_fall_se"]
    return f["rel_drop"] >= SLOW_MIN_DROP and drop > LATE_FALL_SIGMAS * spread and falls_late and still_falls


def _bending_within_noise(name: str, value: str, f: dict, spread: float) -> Verdict:
    """A small drop whose second half falls no more than a still-bending curve's beyond the batch noise: the shape
    does not tell a slow curve from one converging to a level above the floor (labels that the inputs do not
    determine keep a cross-entropy above 0), so a small drop alone says no low rate."""
    drop = f["head"] - f["tail"]
    return Verdict(name, "info", f"noisy: a small drop whose second half falls within the batch noise of a bending "
                   f"curve's (a fall of {(1 - f['half_share']) * drop:.2g}, a bending curve's "
                   f"{(1 - LOW_BEND) * drop:.2g}, noise {spread:.2g}); " + value, "a steady decrease",
                   "the curve's shape does not tell the learning rate here (a loss that levels off above 0 draws "
                   "such a curve at a good rate): average over more steps (a longer run or a larger batch), or "
                   "compare the final loss at this rate and at 3x it")


def _within_noise(name: str, value: str, f: dict) -> Verdict:
    """Ups and downs of the k-step mean as large as much of the drop, yet within what batch noise gives: the
    curve's shape cannot tell the rate (a too-high rate's oscillation stands out of the noise)."""
    spread = f["noise_abs"] * math.sqrt(2 / f["k"])
    return Verdict(name, "info", f"noisy: the loss goes up and down within the batch noise (a climb of "
                   f"{f['rise_abs']:.2g}, noise {spread:.2g}); " + value, "a steady decrease",
                   "the curve's shape does not tell the learning rate here: average over more steps (a longer run "
                   "or a larger batch), or compare the final loss at this rate and at a third of it")


def _slow_within_noise(name: str, value: str, excess: float, spread: float) -> Verdict:
    """A near-linear decrease whose second-half fall exceeds a still-bending curve's only within the batch noise:
    the shape tells no low rate (a noisy loop at its best rate, which 3x would diverge, draws such curves)."""
    return Verdict(name, "info", f"noisy: a near-linear decrease, but within the batch noise of a bending one "
                   f"({excess:.2g} more fall in the second half, noise {spread:.2g}); " + value, "a steady decrease",
                   "the curve's shape does not tell the learning rate here: average over more steps (a longer run "
                   "or a larger batch), or compare the final loss at this rate and at 3x it")


def _noisy_plateau(name: str, value: str, f: dict, spread: float) -> Verdict:
    """A drop made by mid-run, then a level that the batch noise cannot tell from a curve still bending down: no
    sign of a rate that is too high (a too-high rate's plateau stands out of the noise), nor of one too low."""
    late = (1 - f["half_share"]) * (f["head"] - f["tail"])
    change = f"{'a fall' if late >= 0 else 'a rise'} of {abs(late):.2g} in the second half, noise {spread:.2g}"
    return Verdict(name, "info", f"levelled off: the drop made by mid-run, then no change beyond the batch noise "
                   f"({change}); " + value, "a steady decrease",
                   "the curve does not show a rate that is too high or too low: the plateau is within the batch "
                   "noise; to read it, average over more steps (a longer run or a larger batch) before changing "
                   "the learning rate")


def _too_low(name: str, value: str) -> Verdict:
    """The "too low" verdict: a slow, near-linear decrease that a larger rate speeds up."""
    return Verdict(name, "warn", "too low: slow, near-linear decrease; " + value,
                   "most of the drop early, then a slowing decrease", "raise the learning rate (by 3-10x)")
