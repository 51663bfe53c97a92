"""A warm-up written with integer division: ``lr * min(1, (step + 1) // warmup_steps)`` (or ``step // warmup``,
``int(step / warmup)``) is 0 on every step of the warm-up and jumps to the full rate when it ends. The loop spends
the warm-up's steps at a rate of exactly 0, changing nothing, and the warm-up it meant (a ramp that lets the first
updates settle before the full rate applies; Goyal et al. 2017, "Accurate, Large Minibatch SGD", section 2.2) never
happens: the full rate arrives in one step.

Read from the rates the optimizer applied: every param group at exactly 0 on the first :data:`LEAST` steps or
more, then the rate at its first step above 0 already :data:`JUMP` or more of its peak over the run. A linear
warm-up from 0 (``s / warmup``) is 0 on its first step only; a staircase warm-up rises in several steps; a group
held at 0 on purpose while the others train (a backbone unfrozen later) leaves a group above 0. Where the rate
rises at an epoch's end, the same rates come from a schedule stepped once per epoch whose factor is 0 at epoch 0
(``LambdaLR(opt, lambda e: min(1.0, e / 2))``): a whole epoch spent at 0, named with both causes."""

from __future__ import annotations

import math
from collections.abc import Collection

from trainwell.doctor.verdict import Verdict

#: steps at a rate of exactly 0, every group, before the rate is read as a floored warm-up
LEAST = 10
#: the first rate above 0, as a share of the run's peak, for a jump rather than a ramp
JUMP = 0.5


def floored_warmup(name: str, groups: list[list[float]], epochs: Collection[int] = ()) -> Verdict | None:
    """A warning when every param group's rate (``groups``: per group, the rate at each step) is exactly 0 on the
    first :data:`LEAST` steps or more and then jumps to :data:`JUMP` or more of its peak in one step; else None
    (``epochs``: the steps before each validation, the ends of epochs)."""
    steps = min((len(g) for g in groups), default=0)
    zero = 0
    while zero < steps and all(g[zero] == 0 for g in groups):
        zero += 1
    if zero < LEAST or zero == steps:
        return None
    first = [g[zero] for g in groups]
    peaks = [max((v for v in g if math.isfinite(v)), default=0.0) for g in groups]
    if not any(p > 0 and math.isfinite(f) and f >= JUMP * p for f, p in zip(first, peaks, strict=True)):
        return None
    rate = max(first)
    seen = (f"the rate was exactly 0 on the first {zero} of {steps} steps, then {rate:.3g} from step {zero + 1} on "
            f"({rate / max(peaks):.0%} of its peak at once): those steps changed nothing, and no warm-up ramp happened")
    floor_fix = ("divide as floats: lr * min(1.0, (step + 1) / warmup) (or LambdaLR(opt, lambda s: min(1.0, (s + 1) / "
                 "warmup))); Python's // floors the ratio to 0 for every step of the warm-up")
    if zero in epochs:  # the rate rose when an epoch ended: a per-epoch schedule from 0 gives the same rates
        return Verdict(name, "warn", f"{seen}; the rate rose at the end of an epoch: a schedule stepped once per "
                       "epoch whose factor is 0 at epoch 0 (lambda e: e / warmup), or a warm-up by integer division, "
                       "(step + 1) // warmup, which is 0 until it ends", "a warm-up that ramps the rate up from its "
                       "first steps", "start a per-epoch warm-up above 0, (epoch + 1) / warmup_epochs (or step it "
                       f"per batch); for a warm-up by integer division, {floor_fix}")
    return Verdict(name, "warn", f"{seen}: a warm-up by integer division, (step + 1) // warmup, is 0 until it ends",
                   "a warm-up that ramps the rate up from its first steps", floor_fix)
