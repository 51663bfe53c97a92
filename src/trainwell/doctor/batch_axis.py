"""The axis of a model's output along which its examples lie, as batch independence reads it."""

from __future__ import annotations

import torch


def batch_axis(pair: torch.Tensor, whole: torch.Tensor, n: int) -> int:
    """The output's axis of examples: 0, unless only another axis grows from 2 to the batch's ``n`` examples
    (CTC's (T, B, C) log-probabilities, a sequence model's time-first outputs). A scalar (a batch's auxiliary loss)
    has no axis: 0."""
    if n <= 2 or pair.dim() != whole.dim() or pair.dim() == 0 or (pair.shape[0] == 2 and whole.shape[0] == n):
        return 0
    grown = [d for d in range(whole.dim()) if pair.shape[d] == 2 and whole.shape[d] == n]
    return grown[0] if len(grown) == 1 else 0
