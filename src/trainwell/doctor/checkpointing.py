"""Gradient checkpointing (``torch.utils.checkpoint``) as the checks see it.

With ``use_reentrant=True`` a checkpointed segment runs its forward without building a graph: the loss's autograd
graph holds one node for the segment and none of the parameters inside, which get their gradient from a second
backward that the node runs. Walking the graph therefore does not find them; a real ``backward()`` does. A
segment none of whose inputs requires a gradient (the data tensor itself, a detached tensor) gets no node at all:
its parameters never receive a gradient, a real bug that torch only warns about ("None of the inputs have
requires_grad=True")."""

from __future__ import annotations

import warnings

import torch
from torch import nn

#: the start of torch's warning when a reentrant checkpointed segment has no input that requires a gradient
NO_GRAD_INPUTS = "None of the inputs have requires_grad=True"

#: what to do about it, for the verdicts that meet it
ADVICE = ("torch.utils.checkpoint(..., use_reentrant=True) on a segment none of whose inputs requires a gradient "
          "(the data tensor, a detached tensor) gives the parameters inside no gradient: pass use_reentrant=False, "
          "or start the first checkpointed segment after a layer with parameters")


#: what the check "parameters registered" says of a reentrant segment that cuts its parameters off
CUT = "a reentrant checkpointed segment has no input that requires a gradient"
#: the checks that fit the model: they train with those parameters frozen at their initial values
_FITS = ("overfit a tiny subset", "input-independent baseline")


def defer_to_cut(verdicts: list) -> list:
    """A failed overfit or baseline follows from a reentrant checkpointed segment whose parameters get no
    gradient (named by "parameters registered"): its advice names that first."""
    if not any(v.check == "parameters registered" and CUT in str(v.value) for v in verdicts):
        return verdicts
    return [type(v)(v.check, v.status, v.value, v.expected, f"fix 'parameters registered' first: {ADVICE}")
            if v.check in _FITS and v.status in ("fail", "warn") else v for v in verdicts]


class reentrant_without_grad:  # noqa: N801 - used like a function: ``with reentrant_without_grad() as seen:``
    """Records, while a forward with gradients runs, whether a reentrant checkpointed segment had no input that
    requires a gradient (``seen.cut``); other warnings are passed on as they were."""

    def __enter__(self) -> reentrant_without_grad:
        self.cut = False
        self._catch = warnings.catch_warnings(record=True)
        self._caught = self._catch.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc) -> None:
        self._catch.__exit__(*exc)
        for w in self._caught:
            if str(w.message).startswith(NO_GRAD_INPUTS):
                self.cut = True
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def reached_by_backward(model: nn.Module, loss: torch.Tensor) -> set[int]:
    """ids of the model's parameters that a real ``backward()`` of ``loss`` gives a gradient (also those inside
    reentrant checkpointed segments, which the graph does not show). Every ``.grad`` is restored afterwards."""
    params = list(model.parameters())
    saved = [p.grad for p in params]
    for p in params:
        p.grad = None
    try:
        (loss.sum() if loss.dim() else loss).backward()
        return {id(p) for p in params if p.grad is not None}
    finally:
        for p, grad in zip(params, saved, strict=True):
            p.grad = grad


def input_gradients(model: nn.Module, out: torch.Tensor, inputs: list[torch.Tensor]) -> tuple:
    """``torch.autograd.grad(out, inputs, allow_unused=True)``; through a reentrant checkpointed segment, which
    does not support it, a full ``backward()`` whose gradients are read from the inputs' ``.grad`` (the model's
    parameters' ``.grad`` restored afterwards)."""
    try:
        return torch.autograd.grad(out, inputs, allow_unused=True, retain_graph=True)
    except RuntimeError as e:
        if "use_reentrant" not in str(e):
            raise
    params = list(model.parameters())
    saved = [p.grad for p in params]
    for t in inputs:
        t.grad = None
    try:
        out.backward()
        return tuple(t.grad for t in inputs)
    finally:
        for p, grad in zip(params, saved, strict=True):
            p.grad = grad
