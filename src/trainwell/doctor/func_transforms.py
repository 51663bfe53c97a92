"""Forwards run inside a torch.func transform (``vmap``, ``grad``, ``jacrev``: per-example gradients computed
with ``vmap(grad(loss_of(params, x, y)))`` over ``functional_call(model, params, ...)``, as DP-SGD and influence
functions do) see tensors that are one example's slice of a batch, or wrappers with no storage; a random draw
there raises unless the transform was told how to draw. The doctor's hooks do not read such forwards: the
per-example passes are the user's gradient computation, not the loop's forward of a batch (the batch's own
forward, if any, is read as usual).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch


def transformed() -> bool:
    """Whether the code now running is inside a torch.func transform."""
    return torch._C._functorch.peek_interpreter_stack() is not None


def outside_transforms(fn: Callable) -> Callable:
    """``fn`` as a hook that does nothing (returns None) when called inside a torch.func transform."""

    @functools.wraps(fn)
    def hook(*args, **kwargs):
        return None if transformed() else fn(*args, **kwargs)

    return hook
