"""Scores clamped after the last layer: ``logits.clamp(0, 1)``, ``torch.clamp(out, -5, 5)`` "for stability",
``nn.Hardtanh`` as the last module. A clamp leaves a share of the scores at exactly its lower bound and a share at
exactly its upper bound, and passes them no gradient: a loss that wants raw logits (cross-entropy, BCE with logits)
cannot push a clamped score further, its confident predictions stop at the bound (the loss stays above
-log(softmax) of the bounded range), and rows clamped throughout learn nothing. Sigmoid, softmax and tanh
outputs approach their bounds without reaching them (float32 rounding aside, rare at both ends at once), a ReLU
ties only its lower end. A clamp bounds every class's score alike; scores whose minimum sits in one class's column
and whose maximum in another's are columns constant at their own values (a network whose hidden units all died
passes on its last layer's biases), not a clamp.
"""

from __future__ import annotations

import torch

#: the share of the scores at exactly each bound, at least, for a clamp
TIED = 0.05


def clamped(scores: torch.Tensor) -> str | None:
    """Words for finite floating-point ``scores`` tied at both their minimum and their maximum (5% or more each;
    the two differ), naming the bounds and the shares; None otherwise."""
    if not scores.is_floating_point() or scores.numel() < 8 or not bool(torch.isfinite(scores).all()):
        return None
    low, high = scores.min(), scores.max()
    if not bool(low < high):
        return None
    at_low, at_high = float((scores == low).double().mean()), float((scores == high).double().mean())
    if min(at_low, at_high) < TIED or _one_column_each(scores, low, high):
        return None
    return (f"in [{float(low):g}, {float(high):g}], {at_low:.0%} exactly {float(low):g} and {at_high:.0%} exactly "
            f"{float(high):g} (a clamp after the last layer: torch.clamp, nn.Hardtanh?)")


def _one_column_each(scores: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> bool:
    """Whether ``scores`` of two or more classes (the last axis) reach ``low`` in one class's column only and
    ``high`` in one column only."""
    if scores.dim() < 2 or scores.shape[-1] < 2:
        return False
    rows = scores.reshape(-1, scores.shape[-1])
    return int((rows == low).any(0).sum()) == 1 and int((rows == high).any(0).sum()) == 1
