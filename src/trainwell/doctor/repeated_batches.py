"""Validation batches given to the model more than once in one validation pass.

A validation loop that runs its forward twice on each batch (``acc = (model(xv).argmax(1) == yv)...`` and then
``loss_fn(model(xv), yv)``), or walks its loader once for the accuracy and again for the loss, evaluates each
validation example once: the second forward repeats the first one's rows. Readers that count or compare the
validation rows read each batch of a pass once: a batch equal to an earlier batch of the same pass (the same
tensor, or one of equal shape, dtype and values) is a repeated forward, not more examples.
"""

from __future__ import annotations

import torch


def same_batch(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two batches hold the same rows in the same order (one tensor, or equal shape, dtype and values)."""
    return a is b or (a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and bool(torch.equal(a, b)))


def first_of_each(batches: list[torch.Tensor]) -> list[int]:
    """The indices of the batches that repeat no earlier batch of ``batches``, in order."""
    kept: list[int] = []
    for i, batch in enumerate(batches):
        if not any(same_batch(batches[j], batch) for j in kept):
            kept.append(i)
    return kept


__all__ = ["first_of_each", "same_batch"]
