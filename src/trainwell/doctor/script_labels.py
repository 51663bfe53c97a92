"""For ``trainwell watch``: a step's labels, read from its loss's graph.

A class-index or regression loss saves its target in the graph (``NllLossBackward0._saved_target``, ``nn. MSELoss``'s
...; :mod:`~trainwell.doctor.saved_targets`): read before ``backward()`` frees it, it is the ``y=`` the script would
have given ``w.step()`` when its rows are the batch's. A sequence loss is often given its scores and targets flattened
(``F.cross_entropy(out.view(-1, C), y.view(-1))``): its saved target is then one row per position, ``B * T`` of them;
where the batch's input starts with ``(B, T)`` (token ids, or embeddings per position) the target is read back in that
shape, as the script holds it and would have given it (the padded positions of a tagger's targets are then read per
sequence, as the explicit watch reads them).
"""

from __future__ import annotations

import math

import torch


def batch_labels(target, rows: int | None, shape: tuple | None = None) -> torch.Tensor | None:
    """The step's labels: ``target`` (the one its loss saved) when its rows are the batch's (``rows``), or, a
    flattened target (one dimension) whose length is that of the batch's input's leading ``(B, T)`` (``shape``,
    the input's shape), that target shaped so; else None.

    Example:
        >>> batch_labels(torch.zeros(24, dtype=torch.long), 4, (4, 6)).shape
        torch.Size([4, 6])
        >>> batch_labels(torch.zeros(24, dtype=torch.long), 4, (4, 5)) is None
        True
    """
    if not isinstance(target, torch.Tensor) or not target.dim() or rows is None:
        return None
    if len(target) == rows:
        return target
    if target.dim() == 1 and shape is not None and len(shape) >= 2 and shape[0] == rows and \
            math.prod(shape[:2]) == len(target):
        return target.view(shape[0], shape[1])
    return None


def step_labels(target, rows: int | None, shape: tuple | None = None):
    """The step's labels: :func:`batch_labels` of its loss's ``target``, or, a multi-task loss's targets per head
    (a dict: :mod:`~trainwell.doctor.head_targets`), each head's, when two or more heads' rows are the batch's
    (else the first head's alone)."""
    if not isinstance(target, dict):
        return batch_labels(target, rows, shape)
    labels = {k: batch_labels(t, rows, shape) for k, t in target.items()}
    labels = {k: v for k, v in labels.items() if v is not None}
    return labels if len(labels) >= 2 else batch_labels(next(iter(target.values()), None), rows, shape)


def detached(y):
    """``y`` (a tensor, a dict of them or None) detached from its graph."""
    return {k: v.detach() for k, v in y.items()} if isinstance(y, dict) else None if y is None else y.detach()


__all__ = ["batch_labels", "detached", "step_labels"]
