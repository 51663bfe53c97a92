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
    """Whether the code now running is inside a torch.func transform. Read from the dispatch keys, as torch's own
    ``autograd.Function`` does: asking for the interpreter stack instead creates functorch's thread-local state,
    which every later autograd graph task then copies (a cost on each backward of the user's loop)."""
    return torch._C._are_functorch_transforms_active()


def outside_transforms(fn: Callable) -> Callable:
    """``fn`` as a hook that does nothing (returns None) when called inside a torch.func transform."""

    @functools.wraps(fn)
    def hook(*args, **kwargs):
        return None if transformed() else fn(*args, **kwargs)

    return hook
