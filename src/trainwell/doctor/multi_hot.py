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


def cross_entropy_against(z: torch.Tensor, g: torch.Tensor, y: torch.Tensor, tolerance: float = 1e-3) -> bool | None:
    """Whether the gradient ``g`` the loss sent to the logits ``z`` is cross-entropy's against the targets ``y`` on
    the rows that mark two or more classes: ``a (softmax(z) sum(y) - y)`` with one weight ``a`` per row (a mean, a
    sum, sample weights), fitted as ``b softmax(z) - a y`` to a relative residual below ``tolerance``. A loss over
    the marked set as a whole (partial-label learning's -log sum_{k in set} softmax_k, Feng et al. 2020: gradient
    softmax(z) - softmax(z) y / sum(softmax(z) y)) does not fit unless the marked classes' probabilities are equal.
    None when ``y`` is not a batch of multi-hot rows shaped like ``z`` or those rows got no gradient."""
    if g is None or z.dim() != 2 or tuple(y.shape) != tuple(z.shape) or multi_hot_rows(y, z.shape[1]) is None:
        return None
    y = y.to(device=g.device, dtype=torch.float64)
    rows = (y.sum(1) >= 2) & g.detach().ne(0).any(1)
    if not bool(rows.any()):
        return None
    p, t, gr = torch.softmax(z.detach().double()[rows], 1), y[rows], g.detach().double()[rows]
    # per-row least squares of g on the two columns (p, -t): the 2x2 normal equations solved in closed form
    pp, tt, pt = (p * p).sum(1), (t * t).sum(1), (p * t).sum(1)
    gp, gt = (gr * p).sum(1), (gr * t).sum(1)
    det = (pp * tt - pt * pt).clamp_min(1e-300)
    b, a = (gp * tt - gt * pt) / det, (gp * pt - gt * pp) / det
    resid = (gr - b[:, None] * p + a[:, None] * t).norm() / gr.norm().clamp_min(1e-300)
    return bool(resid <= tolerance)
