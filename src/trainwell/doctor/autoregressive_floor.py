"""The lowest loss a model of its own inputs reaches when its output j never sees input j: an autoregressive one.

MADE (Germain et al. 2015: masked Linear weights) and PixelCNN (van den Oord et al. 2016: masked convolutions)
predict each element of their input from the elements before it in some order: output j depends on the inputs of
its context S_j, never on input j itself. Trained on their inputs as targets (a likelihood of the data), such a model
cannot reach the loss free outputs reach (about 0 on 20 binary images): examples that share the context of
element j get the same output there, so the floor is the data's own conditional entropy, about ln 20 = 3.0 nats per
example for 20 distinct images under a summed BCE. The contexts are read from the model's Jacobian (its nonzero
columns per output, on two examples and one Gaussian input; an autoencoder, whose outputs see their own inputs, is
left at the first), and the floor is fitted with one free output per
element and group of examples that agree on its context. With binary targets the same groups bound the accuracy:
a group's one output scores its majority value at best, and a group whose examples disagree has its output at their
frequency, not near 0 or 1, so a fit within reach of the floor may put it on either side of 0.5 (a PixelCNN on 20
binarized 8x8 digits: 97% at best, 96% fitted to 0.02 nats above the floor). The accuracy such a fit is held to is
the share of elements in groups whose examples agree: there the floor's outputs are certain.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from trainwell.optim_eager import eager

MAX_ELEMENTS = 1024  # elements per example whose Jacobian is read, at most


class OrderedFloor(NamedTuple):
    """What an autoregressive model can reach on its examples: its lowest ``loss`` and, for 0/1 targets, the
    per-element ``accuracy`` a fit near that floor is sure of (1.0 for other targets)."""

    loss: float
    accuracy: float


def contexts(model: nn.Module, x: torch.Tensor, y) -> torch.Tensor | None:
    """The (D, D) boolean matrix of which inputs each output element depends on, when the model is autoregressive
    over its own inputs: targets equal to the floating-point inputs, outputs of their shape, no output depending on
    its own input, and some on others; None otherwise."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or not x.is_floating_point() or \
            y.shape != x.shape or x.dim() < 2 or x[0].numel() > MAX_ELEMENTS or not torch.equal(x, y):
        return None
    m = copy.deepcopy(model).eval()
    shape = x.shape[1:]
    probes = [x[0], x[min(1, len(x) - 1)], torch.randn(shape, generator=torch.Generator().manual_seed(0))]
    seen = None
    try:
        for v in probes:
            def f(flat):
                out = m(flat.view(1, *shape))
                if not isinstance(out, torch.Tensor) or out.shape[1:] != shape:
                    raise ValueError("the output is not shaped like the input")
                return out.reshape(-1)

            jac = torch.autograd.functional.jacobian(f, v.detach().reshape(-1).to(x.dtype), vectorize=True) != 0
            if bool(jac.diagonal().any()):  # an output sees its own input (an autoencoder): nothing more to read
                return None
            seen = jac if seen is None else seen | jac
    except (ValueError, RuntimeError, TypeError):  # vmap cannot batch every forward: not read then
        return None
    if bool(seen.diagonal().any()) or not bool(seen.any()):
        return None
    return seen


def settled_accuracy(index: torch.Tensor, y: torch.Tensor) -> float:
    """The share of 0/1 targets ``y`` whose group (``index``: each example's group at each element, as
    :func:`autoregressive_floor` numbers them) holds one value only: the elements one output per group gets right
    with certainty at the floor; 1.0 when the targets are not all 0 or 1."""
    flat = y.detach().reshape(len(y), -1)
    if not bool(((flat == 0) | (flat == 1)).all()):
        return 1.0
    groups = index.reshape(-1)
    ones = torch.bincount(groups, weights=flat.reshape(-1).double())
    total = torch.bincount(groups).double()
    settled = (ones == 0) | (ones == total)
    return float(total[settled].sum() / groups.numel())


def autoregressive_floor(model: nn.Module, x: torch.Tensor, y, loss_fn: Callable, max_iter: int = 100) -> \
        OrderedFloor | None:
    """The lowest value of ``loss_fn`` over outputs equal across the examples that agree on each element's context
    (:func:`contexts`), with the accuracy a fit near it is sure of (:func:`settled_accuracy`); None when the
    model is not autoregressive over its own inputs."""
    seen = contexts(model, x, y)
    if seen is None:
        return None
    flat = x.detach().reshape(len(x), -1)
    groups, offset = [], 0
    for j in range(flat.shape[1]):
        keys = flat[:, seen[j]]
        inverse = torch.unique(keys, dim=0, return_inverse=True)[1] if keys.shape[1] else \
            torch.zeros(len(flat), dtype=torch.long)
        groups.append(inverse + offset)
        offset += int(inverse.max()) + 1
    index = torch.stack(groups, 1)  # (n, D): each example's free output at each element
    free = torch.zeros(offset, dtype=x.dtype, requires_grad=True)
    opt = eager(torch.optim.LBFGS)([free], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")
    lowest = [math.inf]

    def closure():
        opt.zero_grad()
        loss = loss_fn(free[index].view_as(x), y)
        loss = loss.mean() if loss.dim() else loss
        if torch.isfinite(loss):
            lowest[0] = min(lowest[0], float(loss.detach()))
        loss.backward()
        return loss

    with torch.enable_grad():
        try:
            opt.step(closure)
        except (RuntimeError, ValueError):
            return None
    return OrderedFloor(lowest[0], settled_accuracy(index, y)) if math.isfinite(lowest[0]) else None
