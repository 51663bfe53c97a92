"""What an overfit of a tiny subset that fails with class scores missed: the loss or the accuracy.

The recipe (Karpathy, "A Recipe for Training Neural Networks": overfit one batch) asks for both: the accuracy at
100% and the loss near its floor. A model whose accuracy reaches 100% while its loss stays high (a Sigmoid after the
last layer bounds the logits: cross-entropy on scores in [0, 1] cannot go below ln(e + C - 1) - 1) reads, without
a word, like a pass that failed; so does one whose loss reaches its floor when that floor is itself the bug (a
softmax before a loss that applies its own). The note says which part failed, with the numbers.

Example:
    >>> shortfall(0.744, 1.0, start=1.41, floor=0.0, reach=0.142, accuracy_met=True, raised_floor=False)[:60]
    '; the accuracy reached 100%, the loss did not: it stayed abo'
"""

from __future__ import annotations

import math


def shortfall(final: float, acc: float | None, start: float, floor: float, reach: float, accuracy_met: bool,
              raised_floor: bool) -> str:
    """The note on a failed overfit with class scores (``acc`` not None) that says what failed: the loss short of
    ``floor + reach`` with the accuracy met, the accuracy short with the loss met, or (``raised_floor``) both met
    against a floor that the model's outputs themselves raise; empty where both missed or there is no accuracy."""
    if acc is None or not math.isfinite(final):
        return ""
    loss_met = final - floor < reach
    if raised_floor and loss_met and accuracy_met:
        return (f"; the loss reached its floor and the accuracy {acc:.0%}, but that floor is raised by what the "
                "model gives the loss (see what to do), so reaching it is no fit")
    if accuracy_met and not loss_met:
        return (f"; the accuracy reached {acc:.0%}, the loss did not: it stayed above {floor + reach:.3g} (90% of "
                f"the way from {start:.3g} down to its floor {'~0' if abs(floor) <= 1e-3 else f'{floor:.3g}'})")
    if loss_met and not accuracy_met:
        return f"; the loss reached its bar ({floor + reach:.3g}), the accuracy did not ({acc:.0%})"
    return ""


__all__ = ["shortfall"]
