"""``loop: validation labels``: validation labels that do not go with their inputs.

The validation features and labels shuffled apart (two permutations, two ``shuffle=True`` loaders zipped, a
features file and a labels file read in different orders): the model fits its training labels, and its
predictions on the validation set agree with the validation labels no better than with labels drawn apart from
the inputs, from the first validation on. The validation loss climbs from the start and reads as overfitting.

Read on the class-index loss calls of the first and the last validation (their confusion of targets against the
scores' argmax, :func:`~trainwell.doctor.relabelled_validation.confusion`) and on the training batches of the
observed steps before the first validation (the scores' argmax against the labels given to ``w.step``): a warning
when the training batches were fitted (:data:`FITS` of their labels right on the last one read, the first step's
not counted) while
both validations agree with their labels within :data:`MARGIN` of chance (the agreement of independent labels and
predictions with the same class shares: sum over c of share_label(c) x share_predicted(c)). A model that overfits a
small training set has not fitted it by the first validation, and a renumbered validation (another encoder) is
read by :func:`~trainwell.doctor.relabelled_validation.relabelled` first.
"""

from __future__ import annotations

import torch

from trainwell.doctor.relabelled_validation import LEAST, NAME
from trainwell.doctor.verdict import Verdict

FITS = 0.9  # training labels right before the first validation, at least
MARGIN = 0.1  # validation agreement above chance, at most
READS = 64  # training batches read, at most


class TrainingHits:
    """The share of labels right on the observed training batches before the first validation."""

    def __init__(self) -> None:
        self.before_first: list[float] = []

    def read(self, scored, y, validations: int) -> None:
        """One observed step's (scores, gradient) ``scored`` and labels ``y``; ``validations``: those seen so far."""
        if validations or scored is None or not isinstance(y, torch.Tensor) or len(self.before_first) >= READS:
            return
        z = scored[0]
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] < 2 or y.dim() != 1 or len(y) != len(z) \
                or y.is_floating_point():
            return
        self.before_first.append(float((z.detach().argmax(1) == y.to(z.device)).float().mean()))


def agreement(counts: torch.Tensor) -> tuple[float, float, float]:
    """(agreement of the labels as given, agreement of independent labels and predictions, examples) of a
    confusion table of targets (rows) x predictions (columns)."""
    counts = counts.detach().cpu().double()
    total = float(counts.sum())
    if total <= 0:
        return 0.0, 0.0, 0.0
    chance = float((counts.sum(1) / total) @ (counts.sum(0) / total))
    return float(counts.trace()) / total, chance, total


def unrelated(first: torch.Tensor | None, last: torch.Tensor | None, hits: TrainingHits) -> Verdict | None:
    """The warning described in the module docstring, or None."""
    if first is None or last is None or len(hits.before_first) < 2 or hits.before_first[-1] < FITS:
        return None
    reads = [agreement(t) for t in (first, last)]
    if any(total < LEAST or given > chance + MARGIN for given, chance, total in reads):
        return None
    (g1, c1, _), (g2, _, _) = reads
    return Verdict(NAME, "warn", f"the training batches were fitted ({hits.before_first[-1]:.0%} of their labels "
                   f"right before the first validation), while the predictions on the validation set agree with "
                   f"{g1:.0%} of its labels at the first validation and {g2:.0%} at the last, the level of labels "
                   f"drawn apart from their inputs ({c1:.0%}): the validation labels do not go with their inputs",
                   "validation predictions agreeing with their labels well above chance",
                   "keep each validation example's features and label together: one permutation (or one "
                   "DataLoader over a TensorDataset of both) for both, and features and labels read from the same "
                   "rows in the same order")


__all__ = ["TrainingHits", "unrelated"]
