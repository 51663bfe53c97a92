"""Multi-hot targets under a softmax loss: rows of 0/1 that mark several classes at once (multi-label tagging),
given to cross-entropy. Softmax makes the classes compete for one unit of probability, so k true labels each get
at most 1/k of it and the loss cannot fall below ln k; the per-class sigmoid of ``nn.BCEWithLogitsLoss`` scores
every label on its own (Tsoumakas & Katakis, "Multi-label classification: an overview", 2007: binary relevance)."""

from __future__ import annotations

import torch

ADVICE = ("several labels per row compete for one softmax: for multi-label targets use nn.BCEWithLogitsLoss() "
          "(one sigmoid per label; pos_weight for rare labels) and read each label's probability with sigmoid")


def multi_hot_rows(y: torch.Tensor, classes: int | None) -> tuple[int, int] | None:
    """(rows with two or more labels, rows) when ``y`` is a (N, C) float batch of 0s and 1s over the C outputs
    with some row holding two or more ones; None otherwise (soft labels, one-hot rows, a teacher's logits)."""
    if not y.is_floating_point() or y.dim() != 2 or (classes and y.shape[1] != classes) or y.shape[1] < 2:
        return None
    if not bool(((y == 0) | (y == 1)).all()):
        return None
    several = int((y.sum(1) >= 2).sum())
    return (several, len(y)) if several else None
