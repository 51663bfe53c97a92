"""Pre-flight checks on the regularization penalty: raising its strength raises the loss, and at
initialization it does not dwarf the data loss (cs231n's sanity checks)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.loss_kinds import _scalar
from trainwell.doctor.verdict import Verdict
from trainwell.regularize import l2_penalty


def regularization_raises_loss(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor,
                               loss_fn: Callable = F.cross_entropy,
                               penalty: Callable[[nn.Module, float], torch.Tensor] = l2_penalty,
                               strengths: tuple[float, float] = (1e-3, 1e-1)) -> Verdict:
    """Raising the regularization strength must raise the total loss (cs231n sanity check)."""
    with torch.no_grad():
        was = model.training
        model.eval()
        data = _scalar(loss_fn(call(model, x), y))
        model.train(was)
        terms = [float(penalty(model, s)) for s in strengths]
        low, high = (data + t for t in terms)
    ok = high > low
    zero = "" if ok or any(terms) else " (the penalty is 0 at both strengths: every weight it reads is 0)"
    return Verdict("regularization raises loss", "pass" if ok else "warn", f"{low:.4g} -> {high:.4g}{zero}",
                   f"loss(lambda={strengths[1]:g}) > loss(lambda={strengths[0]:g})",
                   "" if ok else "the penalty does not grow with its strength: are the weights all zero, or is the "
                                 "penalty applied to nothing?")


def regularization_dominance(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, penalty: Callable[[nn.Module],
                             torch.Tensor], loss_fn: Callable = F.cross_entropy) -> Verdict:
    """At initialization the penalty should not dwarf the data loss (it would swamp the data gradient)."""
    with torch.no_grad():
        was = model.training
        model.eval()
        data = _scalar(loss_fn(call(model, x), y))
        model.train(was)
        reg = float(penalty(model))
    ratio = reg / max(abs(data), 1e-12)
    if not math.isfinite(ratio):
        return Verdict("regularization vs data loss", "skip", f"skipped: not finite (data loss {data:.4g}, "
                       f"penalty {reg:.4g})", "<= 1 at init", "see the initial loss")
    status = "fail" if ratio > 10 else "warn" if ratio > 1 else "pass"
    return Verdict("regularization vs data loss", status, f"reg/data = {ratio:.3g}", "<= 1 at init",
                   "" if status == "pass" else "the penalty dominates: lower its strength")
