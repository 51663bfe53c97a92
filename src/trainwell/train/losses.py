"""The losses a learner takes by name, and what they read: the class scores in any output a model returns, and
class labels a class-index loss can take.

- :data:`LOSSES`: ``cross_entropy``, ``hinge`` (torch's multiclass hinge), ``mse`` (squared error against one-hot
  labels); :func:`loss_function` looks one up, :func:`named_loss` tells them from a user's own loss;
- :func:`class_scores`: the logits in a tensor, tuple, dict, named tuple or dataclass output;
- :func:`check_labels`: labels of shape (N, 1) or outside [0, C), refused before torch's kernels meet them.

Example:
    >>> import torch
    >>> class_scores((torch.ones(2, 3), torch.zeros(2, 8))).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def _mse_onehot(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if y.is_floating_point():
        raise TypeError("loss 'mse' is the squared error against one-hot class labels (integers); for regression "
                        "targets pass loss_fn=torch.nn.functional.mse_loss (or nn.MSELoss())")
    return F.mse_loss(out, F.one_hot(y, out.shape[-1]).to(out.dtype))


LOSSES: dict[str, Callable] = {
    "cross_entropy": F.cross_entropy,
    "hinge": F.multi_margin_loss,  # multiclass hinge, margin 1, divided by the number of classes
    "mse": _mse_onehot,  # squared error against one-hot targets, averaged over all outputs
}


def loss_function(name: str) -> Callable:
    """The loss called ``name`` (one of :data:`LOSSES`)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}: allowed are {', '.join(LOSSES)}")
    return LOSSES[name]


def class_scores(out) -> torch.Tensor:
    """The class scores in a model's output: the output itself when it is a tensor; in a tuple, list, dict, named
    tuple or dataclass (``(logits, features)``, Hugging Face's ``ModelOutput``) the field named ``logits`` (or
    ``out``, ``output``, ...), else the first floating-point tensor, as the doctor reads it
    (:func:`trainwell.doctor.outputs.logits`). The named losses and the accuracy read these.

    Raises:
        TypeError: the output holds no floating-point tensor.
    """
    if isinstance(out, torch.Tensor):
        return out
    from trainwell.doctor.outputs import logits

    found = logits(out)
    if found is None:
        raise TypeError(f"the model returned a {type(out).__name__} with no floating-point tensor of class scores: "
                        f"return the logits (or a structure holding them), or pass a loss_fn that reads the output")
    return found


#: torch's loss modules that take class indices (beside the named :data:`LOSSES`)
CLASS_INDEX_LOSSES = (nn.CrossEntropyLoss, nn.NLLLoss, nn.MultiMarginLoss)


def named_loss(loss_fn: Callable) -> bool:
    """Whether ``loss_fn`` is one of :data:`LOSSES` (they take the class scores and class-index targets)."""
    return any(loss_fn is f for f in LOSSES.values())


def check_labels(scores: torch.Tensor, y: torch.Tensor, loss_fn: Callable) -> None:
    """Refuse class labels a class-index loss (the named ones, torch's CrossEntropyLoss / NLLLoss /
    MultiMarginLoss) would fail on deep inside torch: labels of shape (N, 1), one-hot integer labels shaped like the
    (N, C) scores, (N, T) labels against (N, T, C) scores (torch takes the classes on axis 1), or outside [0, C) for
    C outputs (torch's ignore index -100 aside); and (N,) targets of a binary
    cross-entropy against (N, 1) scores (torch refuses the sizes without saying which to change). Other losses
    and floating targets (probabilities) are not read.

    Raises:
        ValueError: naming the labels and what is allowed.
    """
    binary = isinstance(loss_fn, (nn.BCEWithLogitsLoss, nn.BCELoss)) or \
        loss_fn in (F.binary_cross_entropy_with_logits, F.binary_cross_entropy)
    if binary and scores.dim() == 2 and scores.shape[1] == 1 and tuple(y.shape) == tuple(scores.shape[:1]):
        raise ValueError(f"binary targets are {tuple(y.shape)} but the model gives one score per example as "
                         f"{tuple(scores.shape)}: give the targets as (N, 1) (y.unsqueeze(1)) or flatten the output "
                         f"(out.squeeze(1) in forward)")
    index_loss = named_loss(loss_fn) or isinstance(loss_fn, CLASS_INDEX_LOSSES)
    if not index_loss or y.is_floating_point() or scores.dim() < 2:
        return
    if y.dim() == 2 and y.shape[1] == 1 and scores.dim() == 2:
        raise ValueError(f"class labels with a trailing dimension of 1 (a batch's labels are {tuple(y.shape)}): give "
                         f"them as one index per example, shape (N,) (y.squeeze(1))")
    if y.dim() == 2 and scores.dim() == 2 and y.shape == scores.shape and bool(((y == 0) | (y == 1)).all()):
        raise ValueError(f"class labels shaped like the model's scores {tuple(y.shape)}, integers 0/1: one-hot labels "
                         f"({y.dtype}); give class indices, shape (N,) (y.argmax(1)), or probabilities as floats "
                         f"(y.float())")
    positions = tuple(scores.shape[:1]) + tuple(scores.shape[2:])
    if y.dim() >= 2 and tuple(y.shape) != positions and tuple(y.shape) == tuple(scores.shape[:-1]):
        raise ValueError(f"the model's scores are {tuple(scores.shape)}, classes last, against labels "
                         f"{tuple(y.shape)}, but torch's class-index losses take the classes on axis 1: "
                         f"{(scores.shape[0], scores.shape[-1], *scores.shape[1:-1])}; return out.movedim(-1, 1) "
                         f"from forward, or give a loss_fn that transposes them")
    c = scores.shape[1]
    valid = y[y != getattr(loss_fn, "ignore_index", -100)]
    if valid.numel() == 0:
        return
    lo, hi = int(valid.min()), int(valid.max())
    if hi >= c or lo < 0:
        void = lo >= 0 and c < 255 and bool((valid[valid >= c] == 255).all())
        raise ValueError(f"class labels run {lo}..{hi} but the model has {c} outputs: labels must be in [0, {c}) " + (
            "(255 marks unlabelled pixels in segmentation masks: pass ignore_index=255 to the loss, "
            "nn.CrossEntropyLoss(ignore_index=255))" if void else
            "(1-based labels? subtract 1; more classes than outputs? widen the last layer)"))
