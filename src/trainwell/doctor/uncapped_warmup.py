"""A warm-up with no cap: ``LambdaLR(opt, lambda s: s / warmup)`` with the ``min(1.0, ...)`` left out. The factor
passes 1 at the end of the warm-up and keeps growing with every step: 10x the optimizer's lr ten warm-ups in,
100x a hundred in, until the loss blows up (or, in a short run, the rate simply ends far above the one chosen).
A warm-up ramps the rate to its target and stops (Goyal et al. 2017, "Accurate, Large Minibatch SGD: Training
ImageNet in 1 Hour", section 2.2).

Read from the rates applied and the group's ``LambdaLR`` function: the rate rose on every watched step (never
fell) to more than 1.5x the optimizer's lr, and the function, read 100x past the watched steps
(:meth:`~trainwell.doctor.lambda_factors.LambdaSchedules.factor_peak`), reaches 10x the factor of the last
step or more: it grows without bound. A warm-up to a peak above the base rate that stops there (``min(4.0,
...)``, linear scaling) and a warm-up still climbing towards 1 pass.
"""

from __future__ import annotations

from collections.abc import Callable

from trainwell.doctor.verdict import Verdict

#: the rate at the last step over the optimizer's lr, above which the warm-up has passed its target
PASSED = 1.5
#: the function's peak far past the watched steps over the last step's factor, for a factor without bound
GROWS = 10.0
#: rates read, at least
LEAST = 20


def uncapped_warmup(name: str, lrs: list[float], group: int | None, initial_lr: float | None,
                    factor_peak: Callable[[], float | None] | None) -> Verdict | None:
    """A warning when a LambdaLR warm-up's rate never fell, ends above 1.5x the optimizer's lr, and its function
    keeps growing (10x further or more, read past the watched steps); else None."""
    if factor_peak is None or initial_lr is None or initial_lr <= 0 or len(lrs) < LEAST:
        return None
    if any(b < a for a, b in zip(lrs, lrs[1:], strict=False)) or lrs[-1] <= PASSED * initial_lr:
        return None
    last = lrs[-1] / initial_lr
    peak = factor_peak()
    if peak is None or peak < GROWS * last:
        return None
    where = f"param group {group}: " if group is not None else ""
    return Verdict(name, "warn", f"{where}the rate rose on every step to {last:.3g}x the optimizer's lr ({lrs[0]:.3g} "
                   f"at step 1 -> {lrs[-1]:.3g} at step {len(lrs)}) and its LambdaLR function keeps growing (to "
                   f"{peak:.3g}x the lr further on): a warm-up with no cap",
                   "a warm-up that stops at the optimizer's lr", "cap the warm-up's factor at 1: LambdaLR(opt, "
                   "lambda s: min(1.0, (s + 1) / warmup)), then decay if wanted")
