"""``loop: validation labels``: validation labels numbered differently from the training labels.

Class names become indices by the order of the classes an encoder was fitted on: two ``LabelEncoder``s fitted on
the training and the validation file apart, or two ``ImageFolder``s over folders that do not hold the same classes
(``class_to_idx`` is the sorted folder list), number the same class differently once one split lacks a class. The
model learns the training numbering and is scored against another: the validation loss climbs while the training
loss falls, read as overfitting.

The watch reads, on the validation's class-index loss calls (``F.cross_entropy``, ``F.nll_loss`` on (B, C) scores
and (B,) targets, or a segmenter's (B, C, H, W) scores and (B, H, W) per-pixel labels, 4096 pixels a call at
most), the confusion of the targets with the scores' argmax (:func:`confusion`, on the device, no host sync, summed
over the validation's calls). A segmenter's masks encoded per split (a class-id remap applied to the training masks
only) are read so too. On the last validation, restricted to the classes the training labels hold, the
renumbering of the targets that agrees best with the predictions (an assignment: Kuhn 1955,
``scipy.optimize.linear_sum_assignment``) is compared with the numbering as given: a fail when the best
renumbering agrees on :data:`AGREE` of the examples or more while the given one agrees on under half of that. A
model that predicts poorly agrees with no numbering; a healthy one agrees best with the given one.
"""

from __future__ import annotations

import torch

from trainwell.doctor.validation_classes import class_indices
from trainwell.doctor.verdict import Verdict

NAME = "loop: validation labels"
AGREE = 0.5  # agreement of the best renumbering, at least
LEAST = 20  # validation examples read, at least
PIXELS = 4096  # a segmenter's pixels read per loss call, at most
MOST_CLASSES = 1024  # classes read, at most: the table holds C^2 counts
#: how the verdict begins (it explains the overfitting verdict, and nothing downstream of the training loss)
WRONG_NUMBERS = "the validation labels are numbered differently from the training labels"


def confusion(scores, target, ignored) -> torch.Tensor | None:
    """Counts (C, C) of (target, predicted class) for one loss call (on their device, no host sync): (B, C) scores
    with (B,) class indices, or a segmenter's (B, C, H, W) or (B, C, D, H, W) scores with per-pixel labels, about
    :data:`PIXELS` of them read (evenly spaced rows of pixels, at least one per image); None for any other call (a
    sequence's (B, C, T)), or over :data:`MOST_CLASSES` classes (a language model's vocabulary: its table would not
    fit)."""
    if not isinstance(scores, torch.Tensor) or not isinstance(target, torch.Tensor) or \
            scores.dim() not in (2, 4, 5) or not scores.is_floating_point() or not 2 <= scores.shape[1] <= MOST_CLASSES:
        return None
    c = scores.shape[1]
    if scores.dim() == 2:
        if not class_indices(target) or len(target) != len(scores):
            return None
        labels, predicted = target, scores.detach().argmax(1)
    else:  # per-pixel labels: every k-th row of pixels read whole (contiguous in memory)
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool or \
                target.shape != scores.shape[:1] + scores.shape[2:]:
            return None
        rows = scores.detach().flatten(2, -2)  # (B, C, rows, W)
        b, _, r, w = rows.shape
        step = max(1, r // max(1, PIXELS // max(1, b * w)))
        predicted = rows[:, :, ::step].movedim(1, -1).contiguous().argmax(-1).reshape(-1)
        labels = target.flatten(1, -2)[:, ::step].reshape(-1)
    keep = (labels >= 0) & (labels < c) & (labels != ignored)
    pairs = labels[keep].long() * c + predicted[keep]
    return torch.bincount(pairs, minlength=c * c).view(c, c)


def relabelled(counts: torch.Tensor | None, seen: list[int] | None, per_class: bool = False) -> Verdict | None:
    """The verdict on the last validation's confusion ``counts`` (targets x predictions), its rows restricted to
    the training classes ``seen``; None when the numbering as given agrees best, or too few examples were read.
    ``per_class``: a segmenter's pixels, whose background outnumbers the other classes: each class's row weighs
    alike (its share of pixels per predicted class), so a remap that leaves the background's id alone is read."""
    if counts is None or not seen:
        return None
    from scipy.optimize import linear_sum_assignment

    counts = counts.cpu().double()
    rows = [c for c in seen if c < len(counts) and (not per_class or counts[c].sum() > 0)]
    counts = counts[rows]
    total = counts.sum().item()
    if total < LEAST:
        return None
    if per_class:
        counts = counts / counts.sum(1, keepdim=True) * (total / len(rows))
    given = sum(counts[i, c].item() for i, c in enumerate(rows)) / total
    r, p = linear_sum_assignment(counts.numpy(), maximize=True)
    best = counts[r, p].sum().item() / total
    if best < AGREE or given > best / 2:
        return None
    moved = [(rows[i], int(j)) for i, j in zip(r, p, strict=True) if rows[i] != j and counts[i, j] > 0]
    named = ", ".join(f"{a} as {b}" for a, b in moved[:5]) + (f" and {len(moved) - 5} more" if len(moved) > 5 else "")
    unit = " (the mean over the classes of their pixels' share)" if per_class else ""
    return Verdict(NAME, "fail", f"{WRONG_NUMBERS}: the model's predictions agree with {given:.0%} of them as "
                   f"given, with {best:.0%} renumbered{unit} (validation label {named})",
                   "the predictions agreeing best with the labels as given",
                   "map the validation masks' label ids as the training masks' are (the same class-id remap or "
                   "palette in both datasets' __getitem__): the model learned the training ids" if per_class else
                   "encode both splits with one encoder fitted on the training labels (encoder.transform on the "
                   "validation labels; one ImageFolder's class_to_idx for both): a split without some class numbers "
                   "the others differently")
