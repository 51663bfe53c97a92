"""Cross-entropy given probabilities: a softmax before a loss that applies its own.

``nn.CrossEntropyLoss`` reads its input as logits and applies log-softmax itself. Given rows that are already
probabilities (non-negative, summing to 1: a Softmax ending the head), its lowest value on hard labels is reached
at one-hot rows, where it is -log(e / (e + C - 1)) = ln(e + C - 1) - 1 > 0 (1.46 for C = 10): the loss can never
approach 0, and the gradients through the double softmax are squashed (Goodfellow, Bengio & Courville 2016,
section 6.2.2.3 on saturating output units). The pre-flight fits free outputs to find the loss's floor; a floor
that sits exactly this far above the one reached with the same output left unnormalized is this bug, also where
the head is one of several outputs whose losses the user sums (a multi-task model returning a dict).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.fitting import _free_outputs, _normalization
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.loss_kinds import _scalar


def probability_floor(classes: int) -> float:
    """The lowest softmax cross-entropy on hard labels over rows that are probabilities: ln(e + C - 1) - 1."""
    return math.log(math.e + classes - 1) - 1


def softmax_before_cross_entropy(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable,
                                 floor: float) -> str | None:
    """Advice naming the output that is probabilities given to cross-entropy, when the loss's ``floor`` (fitted
    with the model's normalized outputs kept normalized) is above the floor with that output left free by
    ln(e + C - 1) - 1 (within 10%); None otherwise."""
    if not math.isfinite(floor) or floor <= 1e-3:
        return None
    with torch.no_grad():
        sample = call(copy.deepcopy(model).eval(), x)
    named = [(name, t) for name, t in O.named_leaves(sample) if t.is_floating_point()]
    for i, (name, t) in enumerate(named):
        if _normalization(t) != "prob":
            continue
        lowest = probability_floor(t.shape[1])
        free = _scalar(loss_fn(_free_outputs(model, x, y, loss_fn, per_example=True, unconstrained=i)(len(x)), y))
        if not math.isfinite(free) or free < -1e-3 or abs(floor - free - lowest) > 0.1 * lowest:
            continue
        shown = "the model's output" if name == "out" else name
        return (f"{shown} is probabilities (its rows sum to 1: a softmax ends the head) given to a cross-entropy, "
                f"which applies its own softmax: its floor is then ln(e + C - 1) - 1 = {lowest:.3g} with C = "
                f"{t.shape[1]} (the loss cannot approach 0, the gradients are squashed); remove the Softmax that "
                f"ends this head and give the loss its raw scores")
    return None


MIDWAY = 2.0
"""A scale of the one-hot scores between 0 and saturation: the curve of a softmax inside the loss is checked there
too, not only at its two ends (a capsule network's margin loss on class lengths, 0.81 at 0 and 0 beyond 0.9, has
ends whose difference, 0.81, falls within 2% of ln C - ln(e + C - 1) + 1 = 0.84 for C = 10)."""


def softmaxed_value(k: float, classes: int) -> float:
    """Cross-entropy on softmax(k * one-hot): the value a softmax inside the loss gives on scores k at the label."""
    q = torch.softmax(torch.tensor([k] + [0.0] * (classes - 1), dtype=torch.float64), 0)
    return float(torch.logsumexp(q, 0) - q[0])


def softmax_inside_loss(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable) -> str | None:
    """Advice naming a softmax applied inside the loss expression before a cross-entropy (``F.cross_entropy(
    out.softmax(-1), y)``), read from the loss on constructed scores: the labels' one-hot rows times k give it
    ln C at k = 0 (where any cross-entropy gives ln C), ln(e + C - 1) - 1 for every large k, where plain
    cross-entropy goes to 0 and label smoothing grows with k, and :func:`softmaxed_value` at k = :data:`MIDWAY`.
    Terms of other outputs cancel in the differences.
    Reads hard labels along the scores' last axis, (B, C) with (B,) or (B, T, C) with (B, T); None otherwise."""
    try:
        with torch.no_grad():
            out = call(copy.deepcopy(model).eval(), x)
            scores = O.logits(out)
            if scores is None or not scores.is_floating_point() or scores.dim() < 2 or \
                    not isinstance(y, torch.Tensor) or y.is_floating_point() or y.shape != scores.shape[:-1]:
                return None
            classes = scores.shape[-1]
            hot = nn.functional.one_hot(y.long().clamp(0, classes - 1), classes).to(scores.dtype)
            at = [_scalar(loss_fn(O.replace_logits(out, k * hot), y)) for k in (0.0, 40.0, 80.0, MIDWAY)]
    except Exception:  # noqa: BLE001 - a loss that cannot be probed so is simply not recognised
        return None
    lowest = probability_floor(classes)
    if classes < 2 or not all(math.isfinite(v) for v in at) or abs(at[1] - at[2]) > 1e-3 * lowest or \
            abs((at[0] - at[1]) - (math.log(classes) - lowest)) > 0.02 * math.log(classes) or \
            abs((at[0] - at[3]) - (math.log(classes) - softmaxed_value(MIDWAY, classes))) > 0.02 * math.log(classes):
        return None
    return (f"the loss applies a softmax to the scores before its cross-entropy, which applies its own (read from "
            f"the loss on constructed scores): its floor is then ln(e + C - 1) - 1 = {lowest:.3g} with C = {classes} "
            f"(the loss cannot approach 0, the gradients are squashed); give the cross-entropy the raw scores")
