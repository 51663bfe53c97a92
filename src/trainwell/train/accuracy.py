"""The accuracy a run records (``train_acc``, ``val_acc``), read the way the targets are written.

- class indices: ``(N, C)`` scores against ``(N,)`` labels, or ``(N, C, d...)`` against ``(N, d...)`` (per position,
  as ``F.cross_entropy`` reads them), or ``(N, T, C)`` against ``(N, T)`` (a sequence model whose loss flattens
  the positions); labels outside ``[0, C)`` (``ignore_index``, a void label) are not counted;
- soft targets: ``(N, C)`` class probabilities (one-hot, label-smoothed, mixed) scored by their largest class;
- binary targets: one score per 0/1 target under binary cross-entropy, thresholded at 0 (logits) or 0.5
  (probabilities, ``BCELoss``);
- anything else (regression): no accuracy, recorded as NaN rather than a number that means nothing.

The epoch's accuracy is its right answers over its labelled examples or positions, summed over its batches
(:func:`counts`).
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
    """How to score ``scores`` against targets ``y`` (read on the first batch of each epoch): ``("classes", 0)``
    ((N, C) scores, (N,) labels), ``("classes_masked", 0)`` (labels on dim 1's positions, or (N,) labels with
    some beyond [0, C)), ``("classes_last", 0)`` ((N, T, C) scores), ``("soft", 0)``, ``("binary", threshold)``, or
    None (no accuracy: a regression; or (N, T, T) scores under a loss of unknown layout, where the class axis
    cannot be told)."""
    if not isinstance(scores, torch.Tensor) or not isinstance(y, torch.Tensor) or not scores.is_floating_point():
        return None
    if not y.is_floating_point() and y.dtype != torch.bool:
        if scores.dim() == 2 and scores.shape[1] >= 2 and y.shape == scores.shape[:1]:
            outside = bool((y >= scores.shape[1]).any())  # a void label (255) beyond the classes
            return ("classes_masked" if outside else "classes"), 0.0
        on_dim1 = scores.dim() >= 3 and scores.shape[1] >= 2 and y.shape == scores.shape[:1] + scores.shape[2:]
        on_last = scores.dim() >= 3 and scores.shape[-1] >= 2 and y.shape == scores.shape[:-1]
        if on_dim1 and on_last and _class_index_loss(loss_fn) is None:
            return None  # (N, T, T): either axis could hold the classes
        if on_dim1:
            return "classes_masked", 0.0
        if on_last:
            return "classes_last", 0.0
    if y.is_floating_point() and y.shape == scores.shape and scores.dim() == 2 and scores.shape[1] >= 2 and \
            bool((y >= 0).all()) and bool(((y.sum(1) - 1).abs() < 1e-4).all()):
        return "soft", 0.0
    threshold = _binary_threshold(loss_fn)
    if threshold is not None and scores.numel() == y.numel() and bool(((y == 0) | (y == 1)).all()):
        return "binary", threshold
    return None


def _class_index_loss(loss_fn: Callable) -> Callable | None:
    """``loss_fn`` when it is torch's class-index loss given the scores as they are (classes on dim 1), else None."""
    from trainwell.train.losses import CLASS_INDEX_LOSSES, named_loss

    if named_loss(loss_fn) or isinstance(loss_fn, CLASS_INDEX_LOSSES) or \
            loss_fn in (F.cross_entropy, F.nll_loss, F.multi_margin_loss):
        return loss_fn
    return None


def counts(kind: tuple[str, float] | None, scores: torch.Tensor, y: torch.Tensor,
           all_labelled: bool = False) -> tuple[torch.Tensor, object]:
    """(right answers, labelled examples or positions) of one batch, with no synchronization with the device:
    the epoch's accuracy is their sums' ratio (right answers NaN without an accuracy). Labels outside [0, C)
    (``ignore_index``, torch's -100) are neither right nor counted; ``all_labelled``: the caller knows no label is
    negative (the whole training set's labels were read once), so class indices are counted without a pass."""
    if kind is None:
        return torch.tensor(math.nan, dtype=torch.float64, device=y.device), len(y)
    how, threshold = kind
    if how == "soft":
        return (scores.argmax(1) == y.argmax(1)).sum(), len(y)
    if how == "binary":
        return ((scores.reshape(-1) > threshold) == y.reshape(-1).bool()).sum(), y.numel()
    dim = -1 if how == "classes_last" else 1
    predicted = scores.max(dim=dim).indices
    if how == "classes":  # a negative (ignored) label is never the predicted class: only the count needs it
        # (count_nonzero: the same int64 count as .sum() of the booleans, in half the time on a 100-row batch)
        return torch.count_nonzero(predicted == y), y.numel() if all_labelled else (y >= 0).sum()
    labelled = (y >= 0) & (y < scores.shape[dim])
    return ((predicted == y) & labelled).sum(), labelled.sum()


class HeldCounts:
    """An epoch's right answers and labelled examples or positions (:func:`counts`), counted a few batches at a
    time: each batch's detached scores and targets are held until ``limit`` bytes of their storage have gathered,
    then counted together (consecutive batches of one shape and dtype as one concatenated batch).

    On a CPU a batch's count is three small operations whose cost is mostly their own dispatch: ~25-35 us a step,
    0.6% of the default CNN's training step; counted together, an epoch's batches cost about what one did. The
    scores are the model's own output, not a copy: hold them only where nothing writes into an output after its
    step (not under CUDA graphs, which replay into the same memory).
    """

    def __init__(self, limit: int = 1 << 20):
        self.limit = limit
        self.reset()

    def reset(self) -> None:
        """Forget everything (a new epoch)."""
        self.right: torch.Tensor | int = 0
        self.labelled: torch.Tensor | int = 0
        self._held: list[tuple] = []
        self._bytes = 0

    def add(self, kind: tuple[str, float] | None, scores: torch.Tensor, y: torch.Tensor,
            all_labelled: bool = False) -> None:
        """Hold one batch (``scores`` detached) to be counted as :func:`counts` counts it."""
        self._held.append((kind, scores, y, all_labelled))
        self._bytes += scores.untyped_storage().nbytes() + y.untyped_storage().nbytes()
        if self._bytes >= self.limit:
            self.flush()

    def flush(self) -> None:
        """Count the held batches."""
        held, self._held, self._bytes = self._held, [], 0
        start = 0
        while start < len(held):
            kind, scores, y, all_labelled = held[start]
            end = start + 1
            while end < len(held) and _same_form(held[end], held[start]):
                end += 1
            if end - start > 1:
                scores, y = torch.cat([h[1] for h in held[start:end]]), torch.cat([h[2] for h in held[start:end]])
            right, labelled = counts(kind, scores, y, all_labelled)
            self.right, self.labelled = self.right + right, self.labelled + labelled
            start = end

    def totals(self) -> tuple[torch.Tensor | int, torch.Tensor | int]:
        """(right answers, labelled examples or positions) of every batch added since :meth:`reset`."""
        self.flush()
        return self.right, self.labelled


def _same_form(a: tuple, b: tuple) -> bool:
    """Whether two held batches can be counted as one: the same accuracy kind, scores and targets of the same
    shape past the batch axis (and a batch axis) and the same dtype, and the same ``all_labelled``."""
    (kind, scores, y, all_labelled), (kind_b, scores_b, y_b, all_labelled_b) = a, b
    return (kind == kind_b and all_labelled == all_labelled_b and scores.dim() >= 1 and y.dim() >= 1
            and scores.shape[1:] == scores_b.shape[1:] and y.shape[1:] == y_b.shape[1:]
            and scores.dtype == scores_b.dtype and y.dtype == y_b.dtype and scores.device == scores_b.device)
