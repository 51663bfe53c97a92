"""A decay scheduler given a ``gamma`` above 1: ``StepLR``, ``MultiStepLR`` and ``ExponentialLR`` multiply the rate
by ``gamma`` at each of their steps (``lr = lr0 · gamma^k``), so ``gamma=10`` written to "divide by 10" multiplies
the rate by 10 at every milestone and the run ends at 100x or 1000x its rate, where it diverges. torch's decays
expect ``0 < gamma < 1`` (0.1 divides by 10); a rate meant to rise is a warm-up (``LinearLR``, a ``LambdaLR``).
The other way, a gamma far below 1 on a scheduler stepped every epoch (``ExponentialLR(gamma=0.1)``: the rate
/10 each epoch) collapses the rate within a few epochs; :func:`steep_gamma_advice` names that gamma in the advice
of the collapse verdict (:mod:`~trainwell.doctor.loop_schedule`), in place of ReduceLROnPlateau's patience.

An ``ExponentialLR`` with a gamma a little above 1 (1.05, 1.1) is the growing rate of a learning-rate range test
(Smith 2017, "Cyclical Learning Rates for Training Neural Networks", section 3.3; fastai's ``lr_find`` grows it
exponentially) and is left alone: the divisor
written the wrong way round is 2 or more (10 for 0.1, 2 for 0.5).

Read from the schedulers stepped while watched (:class:`~trainwell.doctor.orphan_schedulers.SchedulerSteps`): one
of those kinds with ``gamma > 1`` (``ExponentialLR``: ``gamma >= 2``) on a watched optimizer whose applied rate rose
over the run.
"""

from __future__ import annotations

from torch.optim.lr_scheduler import ExponentialLR, MultiStepLR, StepLR

from trainwell.doctor.verdict import Verdict

NAME = "loop: learning rate applied"
#: a gamma at or below this, stepped at least twice, is a steep decay (the rate /2 or more at each step)
STEEP = 0.5
#: the schedulers whose ``gamma`` is a decay factor
DECAYS = (StepLR, MultiStepLR, ExponentialLR)
#: the least gamma of an ``ExponentialLR`` named: below it, a growth ramp (a range test's) is meant
RAMP_BELOW = 2.0


def _where(scheduler) -> str:
    """When ``scheduler`` multiplies the rate by its gamma, in its own arguments."""
    if isinstance(scheduler, StepLR):
        return f"every {scheduler.step_size} calls of scheduler.step() (step_size={scheduler.step_size})"
    if isinstance(scheduler, MultiStepLR):
        return f"at each milestone ({', '.join(str(m) for m in sorted(scheduler.milestones.elements()))})"
    return "at each call of scheduler.step()"


def growing_gamma(stepped, optimizers: list, lrs: list[float]) -> Verdict | None:
    """A warn for a decay scheduler in ``stepped`` (``(scheduler, steps)`` pairs) with ``gamma > 1`` on one of
    ``optimizers`` while ``lrs`` (the rate applied at each observed step) rose; None otherwise."""
    mine = {id(o) for o in optimizers}
    for scheduler, count in stepped:
        gamma = getattr(scheduler, "gamma", None)
        if not isinstance(scheduler, DECAYS) or not isinstance(gamma, int | float) or gamma <= 1 or count < 1 or \
                id(getattr(scheduler, "optimizer", None)) not in mine or \
                (isinstance(scheduler, ExponentialLR) and gamma < RAMP_BELOW):
            continue
        if not lrs or not max(lrs) > lrs[0] > 0:
            continue
        kind = type(scheduler).__name__
        return Verdict(NAME, "warn", f"{kind}(gamma={gamma:g}) multiplies the rate by {gamma:g} {_where(scheduler)}: "
                       f"{lrs[0]:.3g} at step 1 -> {lrs[-1]:.3g} at step {len(lrs)} (peak {max(lrs):.3g})",
                       "a decay: 0 < gamma < 1",
                       f"gamma is the factor the rate is multiplied by: gamma={1 / gamma:.3g} divides it by {gamma:g}; "
                       "a rate meant to rise is a warm-up (LinearLR, or a LambdaLR capped at 1)")
    return None


def steep_gamma_advice(stepped, optimizers: list) -> str | None:
    """The advice for a rate collapsed at epoch ends by a decay scheduler in ``stepped`` (``(scheduler, steps)``
    pairs) on one of ``optimizers`` with ``gamma`` at or below :data:`STEEP`, stepped twice or more; None when
    there is none (the collapse is then some other per-epoch schedule's, e.g. ReduceLROnPlateau's)."""
    mine = {id(o) for o in optimizers}
    for scheduler, count in stepped:
        gamma = getattr(scheduler, "gamma", None)
        if not isinstance(scheduler, DECAYS) or not isinstance(gamma, int | float) or not 0 <= gamma <= STEEP or \
                count < 2 or id(getattr(scheduler, "optimizer", None)) not in mine:
            continue
        kind = type(scheduler).__name__
        every = "each of its steps" if isinstance(scheduler, ExponentialLR) else \
            f"every {scheduler.step_size} of its steps" if isinstance(scheduler, StepLR) else "each milestone"
        return (f"{kind}(gamma={gamma:g}) multiplies the rate by {gamma:g} at {every}, and it was stepped {count} "
                f"times: a decay that steep leaves the rest of the run at a vanishing rate. Use a gentle per-epoch "
                f"factor (ExponentialLR(gamma=0.9 to 0.98)), or put StepLR/MultiStepLR's x0.1 cuts late in the run "
                f"(e.g. at 50% and 75% of the epochs)")
    return None
