"""Pre-flight: a per-position loss (a tagger's, a language model's) that trains the padding positions.

Sequences padded to one length hold positions with no token; the loss must leave them out. Two ways it does not:
no mask at all (the padding's targets, often a tag 0 that is also a real class, are fitted and counted in the
accuracy), and a mask multiplied onto a loss that has already averaged: ``criterion = nn.CrossEntropyLoss()``
then ``(criterion(out.view(-1, C), y.view(-1)) * mask).sum() / mask.sum()``. The default ``reduction='mean'``
returns one number, which the mask scales and ``mask.sum()`` divides back: the padded positions count exactly as
the real ones do, and the mask masks nothing.

Read from the gradient the user's loss sends to the model's scores: zero at every padded position (the input's
padding id: the embedding's ``padding_idx``, or the id that pads the batch's sequences on the right) when the loss
leaves them out, as ``ignore_index`` or a per-position loss (``reduction='none'``) times the mask does. Targets
that are the padding id at the padded positions of a next-token model are
:mod:`~trainwell.doctor.sequence_targets`'s reading.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.inputs import Inputs, fields
from trainwell.doctor.padding_read import _data_padding, _padding_id
from trainwell.doctor.verdict import Verdict

NAME = "padding in the loss"
#: the padded positions' mean gradient over the real positions' at which the loss counts them
COUNTED = 0.1


def padded_loss(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable,
                out=None) -> Verdict | None:
    """A warning when the loss sends the padded positions of (N, T) token ids a gradient (on average at least
    :data:`COUNTED` of the real positions'); None when the targets are not integers per position, no padding is
    found, the model's output ``out`` is not per position or the loss does not run on it, or the loss leaves the
    padding out."""
    scores = O.logits(out) if out is not None else None
    if y.is_floating_point() or y.dim() != 2 or scores is None or not scores.is_floating_point() or \
            scores.dim() != 3:
        return None
    for _, ids in fields(x):
        if ids.is_floating_point() or ids.dtype == torch.bool or ids.shape != y.shape:
            continue
        found = _padding(model, ids)
        if found is None:
            continue
        pad, padded = found
        per_position = _position_gradients(loss_fn, out, scores, y)
        if per_position is None:
            return None
        at_pad, at_token = float(per_position[padded].mean()), float(per_position[~padded].mean())
        if at_token <= 0 or at_pad < COUNTED * at_token:
            return None
        share = float(padded.float().mean())
        return Verdict(NAME, "warn", f"the loss trains the {share:.0%} of positions that are padding (input id "
                       f"{pad}): their scores get {at_pad / at_token:.2g}x the gradient of a real token's",
                       "no gradient at padded positions",
                       "leave the padding out of the loss: targets -100 there (CrossEntropyLoss's ignore_index), or "
                       "a per-position loss, nn.CrossEntropyLoss(reduction='none'), times the mask, summed and "
                       "divided by mask.sum(); a mask multiplied onto the default reduction='mean' (one number "
                       "already) masks nothing")
    return None


def _padding(model: nn.Module, ids: torch.Tensor) -> tuple[int, torch.Tensor] | None:
    """(the padding id, where it is) in ``ids``: the embedding's ``padding_idx``, else the id the sequences are
    padded with on the right; None when neither fills between 5% and 90% of the positions."""
    pad = _padding_id(model)
    if pad is None:
        found = _data_padding(ids)
        pad = found[0] if found is not None else None
    if pad is None:
        return None
    padded = ids == pad
    share = float(padded.float().mean())
    return (pad, padded) if 0.05 <= share <= 0.9 else None


def _position_gradients(loss_fn: Callable, out, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
    """The size of the loss's gradient on each (N, T) position's scores, for the model's output laid out (N, T, C)
    or (N, C, T); None when the loss does not run on it or gives no gradient."""
    n, t = y.shape
    if scores.shape[:2] == (n, t):
        axis = 2
    elif scores.shape[0] == n and scores.shape[2] == t:
        axis = 1
    else:
        return None
    leaf = scores.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            value = loss_fn(O.replace_logits(out, leaf), y)
            if not isinstance(value, torch.Tensor) or value.numel() != 1 or not value.requires_grad:
                return None
            (grad,) = torch.autograd.grad(value, [leaf], allow_unused=True)
    except Exception:  # noqa: BLE001 - a loss that does not run outside the user's loop gets no reading
        return None
    if grad is None or not bool(torch.isfinite(grad).all()):
        return None
    return grad.abs().sum(axis)
