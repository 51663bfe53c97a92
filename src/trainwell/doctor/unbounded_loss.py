"""A watched loop's loss that falls without bound: far below 0 and still falling faster.

A loss with a lowest value (a likelihood in nats, a Gaussian NLL whose variance shrinks as the fit improves) may
go below 0, but it slows as it nears that value. A loss with a term of the wrong sign (a VAE's KL subtracted
instead of added, a log-likelihood missing its minus sign) has none: the optimizer grows the term's inputs (the
encoder's mean and log-variance) step after step, so the loss falls quadratically or exponentially, ever faster,
to many times its starting size below 0, and on to -inf or NaN.

The reading asks for both: the loss ends (or stands before its first non-finite value) more than :data:`DEPTH`
times the start's size (plus 1, for a loss that starts near 0) below 0, and its last quarter fell more than
:data:`SPEEDUP` times as fast as the quarter before and :data:`SHARE` of the whole drop at least (the quarters of a
curve that has flattened differ by noise only); or the loss reached -inf, which no loss with a lowest value does.
A heteroscedastic Gaussian NLL falls to 1.7 times its start's size (plus 1) below 0, at a constant or a slowing
pace; a VAE whose KL term is subtracted, to 1000 times in 200 steps of Adam. A policy gradient's or one player's
loss in a game is not read (:mod:`~trainwell.doctor.watch` skips them): such a loss need not fall at all.
"""

from __future__ import annotations

import math

from trainwell.doctor.curve_reading import MIN_STEPS, _centered_mean
from trainwell.doctor.verdict import Verdict

NAME = "loop: loss bounded below"
#: the loss ends more than this many times (|start| + 1) below 0 ...
DEPTH = 5.0
#: ... and its last quarter fell more than this many times as fast per step as the quarter before (1 when it falls
#: at a constant pace, below 1 when it slows, 1.36 for a quadratic fall, more for an exponential one) ...
SPEEDUP = 1.25
#: ... a fall that is this share of the whole drop at least (a curve that has flattened has quarters of noise only)
SHARE = 0.3

ADVICE = ("the optimizer drives the loss to -inf instead of fitting the data: a term with the wrong sign (a KL "
          "divergence or a penalty subtracted instead of added: loss = recon + kl, with kl = -0.5 * sum(1 + logvar "
          "- mu^2 - exp(logvar))), or a log-likelihood missing its minus sign; doctor.check(model, x, y, loss_fn) "
          "fits free outputs to the loss to confirm it")


def unbounded_fall(losses: list[float]) -> Verdict | None:
    """The warning when the per-step ``losses`` fall without bound (see the module), else None."""
    stop = next((i for i, v in enumerate(losses) if not math.isfinite(v)), len(losses))
    finite = losses[:stop]
    if not finite:
        return None
    start = sum(finite[: max(1, len(finite) // 10)]) / max(1, len(finite) // 10)
    if stop < len(losses) and losses[stop] == -math.inf:
        return Verdict(NAME, "warn", f"the loss falls without bound: {start:.3g} -> -inf at step {stop}",
                       "a loss with a lowest value", ADVICE)
    if len(finite) < 2 * MIN_STEPS:
        return None
    n = len(finite)
    k = max(2, n // 10)
    smooth = _centered_mean(finite, k)
    end = sum(finite[-k:]) / k
    half, three_quarters = smooth[n // 2], smooth[(3 * n) // 4]
    last, before = three_quarters - end, half - three_quarters
    # per step: the end is the mean of the last k losses, centred k / 2 steps before the end
    pace, earlier = last / max(n - k / 2 - (3 * n) // 4, 1), before / max((3 * n) // 4 - n // 2, 1)
    if end < -DEPTH * (abs(start) + 1) and pace > SPEEDUP * max(earlier, 0.0) and last > SHARE * (start - end):
        tail = f" (then {losses[stop]} at step {stop})" if stop < len(losses) else ""
        return Verdict(NAME, "warn", f"the loss falls without bound: {start:.3g} -> {end:.3g}{tail}, ever faster "
                       f"(the last quarter of the run fell {last:.3g}, the quarter before {before:.3g})",
                       "a loss that slows as it nears its lowest value", ADVICE)
    return None
