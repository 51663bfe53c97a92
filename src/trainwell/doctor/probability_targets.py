"""``loop: probability targets``: ``F.cross_entropy`` (``nn.CrossEntropyLoss``) given class probabilities whose rows
do not sum to 1.

Given floating-point targets shaped like its scores, cross-entropy reads each row as a distribution over the
classes: its loss is ``-sum_c t_c log softmax(z)_c`` and its gradient on the scores ``softmax(z) * sum_c t_c - t``.
Rows that sum to s scale the loss and the gradient by s: one-hot masks read from 8-bit images (0 / 255) train at
255x the rate chosen, and until the scores reach the targets' direction the step is 255x too long; multi-hot rows
(several labels per example, meant for a binary cross-entropy per class) sum to the label count and spread the
probability over the labels. Read on the first training call with gradients
(:class:`~trainwell.doctor.training_loss_call.TrainingLossCall`): the rows' least, mean and largest sum; named when
the mean is off 1 by more than :data:`OFF` (label smoothing, mixup and soft teachers' rows sum to 1).

Example:
    >>> import torch
    >>> probability_targets_verdict(torch.tensor([255.0, 255.0, 255.0])).status
    'warn'
    >>> probability_targets_verdict(torch.tensor([1.0, 1.0, 1.0])) is None
    True
"""

from __future__ import annotations

import math

import torch

from trainwell.doctor.verdict import Verdict

NAME = "loop: probability targets"
#: the rows' mean sum off 1 by more than this share
OFF = 0.1


def probability_targets_verdict(row_sums: torch.Tensor | None) -> Verdict | None:
    """A warning when the class-probability targets of the training cross-entropy (``row_sums``: their rows'
    least, mean and largest sum) sum to more or less than 1 by over :data:`OFF`; None otherwise."""
    if row_sums is None:
        return None
    low, mean, high = (float(v) for v in row_sums)
    if not math.isfinite(mean) or abs(mean - 1) <= OFF:
        return None
    spread = f"{low:.3g}" if math.isclose(low, high, rel_tol=1e-6) else f"{low:.3g} to {high:.3g}, mean {mean:.3g}"
    if all(math.isclose(v, round(v)) for v in (low, high)) and low >= 2 and high <= 10:
        cause = "several labels per row (multi-hot)? Cross-entropy spreads one distribution over them: use " \
                "BCEWithLogitsLoss for several labels per example"
    else:
        cause = "targets scaled (one-hot rows x 255 from 8-bit masks?) scale the loss and its gradient by the " \
                "same factor: divide them so each row sums to 1, or pass class indices (t.argmax(1))"
    return Verdict(NAME, "warn", f"F.cross_entropy was given class-probability targets whose rows sum to {spread}, "
                   "not 1: the loss and its gradient are scaled by that sum", "rows of probabilities summing to 1",
                   cause)


__all__ = ["probability_targets_verdict"]
