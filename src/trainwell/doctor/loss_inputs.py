"""Pre-flight: what the loss function hands to torch's losses of log-probabilities. ``F.kl_div(input, target)``
(``nn.KLDivLoss``) and ``F.nll_loss`` (``nn.NLLLoss``) read their input as log-probabilities, which are never
positive; given probabilities (a distillation loss fed ``softmax(s / T)`` instead of ``log_softmax``) or raw
logits, the KL term goes negative and the loss has no floor (Hinton, Vinyals & Dean, "Distilling the knowledge in a
neural network", 2015, match softened distributions: the student's side must be log-probabilities for torch's
``kl_div``). ``F.gaussian_nll_loss`` (``nn.GaussianNLLLoss``) reads a variance that must be positive (Nix & Weigend
1994 make it so with an exponential; softplus is the usual choice): one made by a ReLU is exactly 0 wherever the
unit is off, torch clamps it to ``eps`` = 1e-6 and those examples' squared errors are multiplied by 500,000. The
calls are seen inside the user's own loss, however it is written, with a :class:`~torch.overrides.TorchFunctionMode`
over one evaluation of it."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from trainwell.doctor.verdict import Verdict

NAME = "loss input"

_LOG_PROBABILITY_LOSSES = {F.kl_div: "kl_div", F.nll_loss: "nll_loss"}


class _LossCalls(TorchFunctionMode):
    """Records the input of every ``F.kl_div`` / ``F.nll_loss`` call and the variance of every
    ``F.gaussian_nll_loss`` call made while it is active."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, torch.Tensor]] = []
        self.variances: list[torch.Tensor] = []  # the var given to F.gaussian_nll_loss

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.gaussian_nll_loss:
            var = args[2] if len(args) > 2 else (kwargs or {}).get("var")
            if isinstance(var, torch.Tensor):
                self.variances.append(var.detach())
        name = _LOG_PROBABILITY_LOSSES.get(func)
        if name is not None:
            given = args[0] if args else (kwargs or {}).get("input")
            if isinstance(given, torch.Tensor):
                self.seen.append((name, given.detach()))
        return func(*args, **(kwargs or {}))


def log_probability_inputs(loss_fn: Callable, out, y) -> Verdict | None:
    """A fail when the loss gives ``F.kl_div`` or ``F.nll_loss`` an input with positive values: probabilities or
    logits where log-probabilities belong; for ``F.gaussian_nll_loss``, a variance with negative entries (a fail)
    or exact zeros (a warning). None when none is called, or every input is as it should be."""
    calls = _LossCalls()
    with torch.no_grad(), calls, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the loss's own warnings (a broadcast) are the other checks' to report
        try:
            loss_fn(out, y)
        except ValueError:  # torch refuses a negative variance: read from what was recorded before it raised
            if not calls.variances:
                raise
    variance = _variance_verdict(calls.variances)
    if variance is not None:
        return variance
    for name, given in calls.seen:
        if not given.is_floating_point() or given.numel() == 0 or not bool((given > 1e-6).any()):
            continue
        lo, hi = float(given.min()), float(given.max())
        kind = "probabilities" if lo >= 0 and hi <= 1 else "values that are not log-probabilities (logits?)"
        return Verdict(NAME, "fail", f"F.{name} is given {kind}: its input runs {lo:.3g}..{hi:.3g}",
                       "log-probabilities (all <= 0)",
                       f"{name} reads its input as log-probabilities: pass F.log_softmax(scores, dim=-1) (for "
                       f"distillation, F.log_softmax(student / T) against F.softmax(teacher / T)); with probabilities "
                       f"the loss goes negative and has no floor" if name == "kl_div" else
                       f"{name} reads its input as log-probabilities: pass F.log_softmax(scores, dim=1), or give the "
                       f"raw scores to F.cross_entropy, which applies it")
    return None


def _variance_verdict(variances: list[torch.Tensor]) -> Verdict | None:
    """A fail when a variance given to ``F.gaussian_nll_loss`` has negative entries (torch raises), a warning when
    1% or more of its entries are exactly 0 (a ReLU's; torch clamps them to eps)."""
    for var in variances:
        if not var.is_floating_point() or var.numel() == 0:
            continue
        negative, zero = float((var < 0).double().mean()), float((var == 0).double().mean())
        advice = ("make the variance positive with a smooth map: F.softplus(v) + 1e-6, or exp(log_var) (predict the "
                  "log-variance)")
        if negative > 0:
            return Verdict(NAME, "fail", f"F.gaussian_nll_loss is given a variance with negative entries "
                           f"({negative:.0%} of them; torch raises 'var has negative entry')", "a positive variance",
                           advice)
        if zero >= 0.01:
            return Verdict(NAME, "warn", f"F.gaussian_nll_loss is given a variance that is exactly 0 on {zero:.0%} "
                           "of the entries (a ReLU's?)", "a positive variance", advice + ": torch clamps a 0 "
                           "variance to eps = 1e-6, which multiplies those examples' squared errors by 500,000")
    return None
