"""For ``trainwell watch``: the script's ``backward()`` calls read.

``Tensor.backward``, ``torch.autograd.backward`` and ``GradScaler.scale`` are wrapped while a script runs under the
watch: each ``backward()`` names the tensor it starts from (the step's loss, read before the pass frees its graph)
and reports its end; a loss given to ``GradScaler.scale`` is remembered, so that its scaled copy's ``backward()``
reads the loss itself. What the calls leave is kept in :class:`Taps` till the step reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from trainwell.doctor.caller_warnings import relay, see_through


@dataclass
class Taps:
    """What the script's calls left since the last step: the loss backed from, its target, the batch's rows."""

    loss: torch.Tensor | None = None
    target: torch.Tensor | dict | None = None  # a multi-task loss's per head
    rows: int | None = None
    shape: tuple | None = None  # the batch's input's shape (a flattened sequence target is read back in it)
    heads: dict | None = None  # the latest training forward's dict of heads (head_targets.output_heads)
    backing: torch.Tensor | None = None  # the tensor whose Tensor.backward() is running
    in_step: bool = False  # inside an optimizer's step (an LBFGS closure's backward passes)
    kept: bool = False  # the loss is kept already for a step of an optimizer the watch does not hold
    scaled: dict = field(default_factory=dict)  # id(GradScaler.scale's output) -> the loss it was given


def tensor_backward(taps: Taps, backed: Callable, done: Callable) -> Callable:
    """A wrapper of ``Tensor.backward``: ``backed(tensor)`` before the pass, ``done(outer)`` after it (``outer``
    False for the same call again through a ``TorchFunctionMode``'s dispatch)."""
    def wrap(original):
        @see_through
        def read(tensor, *args, **kwargs):
            backed(tensor)
            # torch.autograd.backward, called by it, and the call again through a TorchFunctionMode's dispatch
            # read nothing more
            outer, taps.backing = taps.backing is not tensor, tensor
            try:
                out = relay(original, tensor, *args, **kwargs)
            finally:
                taps.backing = None
            done(outer)
            return out
        return read
    return wrap


def autograd_backward(taps: Taps, backed: Callable, done: Callable) -> Callable:
    """A wrapper of ``torch.autograd.backward``: the script's own call read as :func:`tensor_backward` reads
    ``Tensor.backward`` (``outer`` False when ``Tensor.backward`` called it)."""
    def wrap(original):
        @see_through
        def read(tensors, *args, **kwargs):
            outer = taps.backing is None  # called by the script, not by Tensor.backward
            backed(tensors[0] if isinstance(tensors, (list, tuple)) and tensors else tensors)
            out = relay(original, tensors, *args, **kwargs)
            done(outer)
            return out
        return read
    return wrap


def scaled_losses(taps: Taps) -> Callable:
    """A wrapper of ``GradScaler.scale``: the loss it was given, kept under its scaled copy's id."""
    def wrap(original):
        @see_through
        def read(scaler, outputs):
            out = relay(original, scaler, outputs)
            if isinstance(outputs, torch.Tensor) and isinstance(out, torch.Tensor):
                taps.scaled.clear()  # the latest only: a scaled loss is backed through before the next
                taps.scaled[id(out)] = outputs
            return out
        return read
    return wrap


__all__ = ["Taps", "autograd_backward", "scaled_losses", "tensor_backward"]
