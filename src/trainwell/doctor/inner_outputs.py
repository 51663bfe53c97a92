"""Outputs a model returns from mid-network: tensors that also feed another output it returns, as a VAE's encoder
mean and log-variance feed its reconstruction (through the sampled z) and are returned for the KL term.

A loss term on such an output sends its gradient into the network at that depth, beside the gradient the other
terms send down through the layers above it: the gradient at an inner layer is then not the output's gradient
carried through depth. :func:`without_direct_gradient` rebuilds an output structure whose inner outputs pass no
gradient from the loss's own use of them (the values are unchanged; their paths into the other outputs keep
theirs).

Example:
    >>> import torch
    >>> h = torch.ones(2, requires_grad=True) * 2
    >>> inner_outputs((h * 3, h))
    [1]
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from trainwell.doctor import outputs as O
from trainwell.doctor.registration import graph_nodes


def inner_outputs(out, limit: int = 200_000) -> list[int]:
    """Indices (in :func:`~trainwell.doctor.outputs.leaves` order) of the floating-point output tensors whose
    autograd node lies in the graph of another output (a different node: the same tensor returned twice is not)."""
    tensors = [(i, t) for i, t in enumerate(O.leaves(out)) if t.is_floating_point() and t.grad_fn is not None]
    if len(tensors) < 2:
        return []
    nodes = {t.grad_fn: i for i, t in tensors}
    found: set[int] = set()
    for _, t in tensors:
        root = t.grad_fn
        found |= {nodes[f] for f in graph_nodes([root], limit=limit) if f is not root and f in nodes}
    return sorted(found - {i for i, t in tensors if sum(u.grad_fn is t.grad_fn for _, u in tensors) > 1})


class _NoGradient(torch.autograd.Function):
    """The identity forward; no gradient backward."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        return t.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> None:
        return None


def without_direct_gradient(out, inner: list[int], read: set[int] | None = None):
    """``out`` with the tensors at the ``inner`` indices passing no gradient back from what reads them next (the
    loss); their values, and the gradient reaching them through the other outputs, are kept. ``read`` collects,
    at backward, the indices of those the loss sent a gradient that is not all zero."""
    index = {id(t): i for i, t in enumerate(O.leaves(out)) if i in inner}

    def cut(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in index:
            return t
        stripped = _NoGradient.apply(t)
        if read is not None and stripped.requires_grad:
            stripped.register_hook(_recorder(read, index[id(t)]))
        return stripped

    return O.map_tensors(out, cut)


def _recorder(read: set[int], i: int) -> Callable[[torch.Tensor], None]:
    """A gradient hook that adds ``i`` to ``read`` when the gradient is not all zero."""

    def record(grad: torch.Tensor) -> None:
        if bool(grad.any()):
            read.add(i)

    return record
