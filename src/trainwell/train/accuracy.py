"""The accuracy a run records (``train_acc``, ``val_acc``), read the way the targets are written.

- class indices: ``(N, C)`` scores against ``(N,)`` labels, or ``(N, C, d...)`` against ``(N, d...)`` (per position,
  as ``F.cross_entropy`` reads them), or ``(N, T, C)`` against ``(N, T)`` (a sequence model whose loss flattens
  the positions); labels outside ``[0, C)`` (``ignore_index``, a void label) are not counted (with one label
  per example: when the first batch holds one; otherwise the step costs what ``(argmax == y).sum()`` costs);
- soft targets: ``(N, C)`` class probabilities (one-hot, label-smoothed, mixed) scored by their largest class;
- binary targets: one score per 0/1 target under binary cross-entropy, thresholded at 0 (logits) or 0.5
  (probabilities, ``BCELoss``);
- anything else (regression): no accuracy, recorded as NaN rather than a number that means nothing.

A batch's value is its accuracy times its number of examples, so that the trainer's sum over batches divided by
the examples seen is the epoch's accuracy (a mean over batches weighted by their examples).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

_LOGITS = (nn.BCEWithLogitsLoss, F.binary_cross_entropy_with_logits)
_PROBABILITIES = (nn.BCELoss, F.binary_cross_entropy)


def _binary_threshold(loss_fn: Callable) -> float | None:
    while isinstance(loss_fn, functools.partial):
        loss_fn = loss_fn.func
    if any(loss_fn is f or isinstance(f, type) and isinstance(loss_fn, f) for f in _LOGITS):
        return 0.0
    if any(loss_fn is f or isinstance(f, type) and isinstance(loss_fn, f) for f in _PROBABILITIES):
        return 0.5
    return None


def accuracy_kind(scores: torch.Tensor, y: torch.Tensor, loss_fn: Callable) -> tuple[str, float] | None:
    """How to score ``scores`` against targets ``y`` (read once, on the first batch): ``("classes", 0)``,
    ``("classes_masked", 0)``, ``("classes_last", 0)``, ``("soft", 0)``, ``("binary", threshold)``, or None (no
    accuracy)."""
    if not isinstance(scores, torch.Tensor) or not isinstance(y, torch.Tensor) or not scores.is_floating_point():
        return None
    if not y.is_floating_point() and y.dtype != torch.bool:
        if scores.dim() == 2 and scores.shape[1] >= 2 and y.shape == scores.shape[:1]:
            # one label per example, all in [0, C) on the first batch: counted without a mask (a label ignored
            # in a later batch then counts as a wrong answer); per-position labels are always masked
            outside = bool(((y < 0) | (y >= scores.shape[1])).any())
            return ("classes_masked" if outside else "classes"), 0.0
        if scores.dim() >= 2 and scores.shape[1] >= 2 and y.shape == scores.shape[:1] + scores.shape[2:]:
            return "classes_masked", 0.0
        if scores.dim() >= 3 and scores.shape[-1] >= 2 and y.shape == scores.shape[:-1]:
            return "classes_last", 0.0
    if y.is_floating_point() and y.shape == scores.shape and scores.dim() == 2 and scores.shape[1] >= 2 and \
            bool((y >= 0).all()) and bool(((y.sum(1) - 1).abs() < 1e-4).all()):
        return "soft", 0.0
    threshold = _binary_threshold(loss_fn)
    if threshold is not None and scores.numel() == y.numel() and bool(((y == 0) | (y == 1)).all()):
        return "binary", threshold
    return None


def right_answers(kind: tuple[str, float] | None, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The batch's accuracy times its examples (``len(y)``) as a float64 tensor (NaN without an accuracy), with no
    synchronization with the device."""
    if kind is None:
        return torch.tensor(math.nan, dtype=torch.float64, device=y.device)
    how, threshold = kind
    if how == "soft":
        return (scores.argmax(1) == y.argmax(1)).sum().double()
    if how == "binary":
        return ((scores.reshape(-1) > threshold) == y.reshape(-1).bool()).double().mean() * len(y)
    dim = -1 if how == "classes_last" else 1
    predicted = scores.max(dim=dim).indices
    if how == "classes":
        return (predicted == y).sum().double()
    labelled = (y >= 0) & (y < scores.shape[dim])
    return ((predicted == y) & labelled).sum().double() * len(y) / labelled.sum()
