"""``loop: validation labels``: validation labels numbered differently from the training labels.

Class names become indices by the order of the classes an encoder was fitted on: two ``LabelEncoder``s fitted on
the training and the validation file apart, or two ``ImageFolder``s over folders that do not hold the same classes
(``class_to_idx`` is the sorted folder list), number the same class differently once one split lacks a class. The
model learns the training numbering and is scored against another: the validation loss climbs while the training
loss falls, read as overfitting.

The watch reads, on the validation's class-index loss calls (``F.cross_entropy``, ``F.nll_loss`` on (B, C) scores
and (B,) targets), the confusion of the targets with the scores' argmax (:func:`confusion`, on the device, no host
sync). On the last validation, restricted to the classes the training labels hold, the renumbering of the targets
that agrees best with the predictions (an assignment: Kuhn 1955, ``scipy.optimize.linear_sum_assignment``) is
compared with the numbering as given: a fail when the best renumbering agrees on :data:`AGREE` of the examples or
more while the given one agrees on under half of that. A model that predicts poorly agrees with no numbering; a
healthy one agrees best with the given one.
"""

from __future__ import annotations

import torch

from trainwell.doctor.validation_classes import class_indices
from trainwell.doctor.verdict import Verdict

NAME = "loop: validation labels"
AGREE = 0.5  # agreement of the best renumbering, at least
LEAST = 20  # validation examples read, at least
#: how the verdict begins (it explains the overfitting verdict, and nothing downstream of the training loss)
WRONG_NUMBERS = "the validation labels are numbered differently from the training labels"


def confusion(scores, target, ignored) -> torch.Tensor | None:
    """Counts (C, C) of (target, predicted class) for one loss call on (B, C) scores and (B,) class indices (on
    their device); None for any other call."""
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2 or not class_indices(target) or \
            len(target) != len(scores) or not scores.is_floating_point() or scores.shape[1] < 2:
        return None
    c = scores.shape[1]
    keep = (target >= 0) & (target < c) & (target != ignored)
    pairs = target[keep] * c + scores.detach()[keep].argmax(1)
    return torch.bincount(pairs, minlength=c * c).view(c, c)


def relabelled(counts: torch.Tensor | None, seen: list[int] | None) -> Verdict | None:
    """The verdict on the last validation's confusion ``counts`` (targets x predictions), its rows restricted to
    the training classes ``seen``; None when the numbering as given agrees best, or too few examples were read."""
    if counts is None or not seen:
        return None
    from scipy.optimize import linear_sum_assignment

    counts = counts.cpu().double()
    rows = [c for c in seen if c < len(counts)]
    counts = counts[rows]
    total = counts.sum().item()
    if total < LEAST:
        return None
    given = sum(counts[i, c].item() for i, c in enumerate(rows)) / total
    r, p = linear_sum_assignment(counts.numpy(), maximize=True)
    best = counts[r, p].sum().item() / total
    if best < AGREE or given > best / 2:
        return None
    moved = [(rows[i], int(j)) for i, j in zip(r, p, strict=True) if rows[i] != j and counts[i, j] > 0]
    named = ", ".join(f"{a} as {b}" for a, b in moved[:5]) + (f" and {len(moved) - 5} more" if len(moved) > 5 else "")
    return Verdict(NAME, "fail", f"{WRONG_NUMBERS}: the model's predictions agree with {given:.0%} of them as "
                   f"given, with {best:.0%} renumbered (validation label {named})",
                   "the predictions agreeing best with the labels as given",
                   "encode both splits with one encoder fitted on the training labels (encoder.transform on the "
                   "validation labels; one ImageFolder's class_to_idx for both): a split without some class numbers "
                   "the others differently")
