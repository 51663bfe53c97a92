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


def pairwise(pair: torch.Tensor | None, whole: torch.Tensor | None, n: int) -> bool:
    """Whether the output is a score matrix over the batch's pairs: (n, n) for ``n`` examples, (2, 2) for two (a
    CLIP model's ``logits_per_image``, a two-tower model's in-batch scores, a Siamese model's distance matrix).
    Entry (i, j) scores example i against example j's candidate, so row i reads every example by design; what is
    example i's own is the diagonal entry (i, i), and reordering the examples reorders both axes."""
    return isinstance(pair, torch.Tensor) and isinstance(whole, torch.Tensor) and n > 2 and whole.dim() == 2 and \
        tuple(pair.shape) == (2, 2) and tuple(whole.shape) == (n, n)
