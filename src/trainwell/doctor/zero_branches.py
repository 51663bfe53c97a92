"""Weights whose identical rows end a branch added to another path: LoRA's ``B`` (Hu et al. 2021, zero at init
beside a random ``A``), ControlNet's zero convolutions, the zero-initialized last layer of a residual branch
(Fixup, "zero-init residual"). Their rows are identical, yet their units are not symmetric: each output unit is
summed with a different unit of the other path, so each gets its own gradient from the first step.

Such a weight is told from a constant hidden layer by its place in one forward's autograd graph: past reshapes,
it is an operand of a product (a matrix product, a convolution) whose result, past reshapes and scalings, is
added to a tensor computed from the input (not to a bias alone; a frozen base layer's output, which needs no
gradient, counts). A zero-initialized hidden ``nn.Linear`` feeds an
activation instead, and its units stay identical."""

from __future__ import annotations

import copy

import torch
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.sampled_weights import _SHAPE, _consumers

#: a product that takes a weight as an operand
_PRODUCT = ("MmBackward", "AddmmBackward", "BmmBackward", "ConvolutionBackward", "MvBackward", "AddmvBackward")
#: what scales a branch's output before it is added (LoRA's alpha / r)
_SCALE = ("MulBackward", "DivBackward")
#: the sum with the other path
_SUM = ("AddBackward", "SubBackward")


def branch_ends(model: nn.Module, x: torch.Tensor | Inputs, names: list[str]) -> set[str]:
    """Those of the parameters ``names`` every use of which ends a branch added to another path (see the module's
    docstring), read on an eval-mode copy of ``model``; empty when the copy cannot run forward."""
    m = copy.deepcopy(model).eval()
    params = dict(m.named_parameters())
    wanted = [(n, params[n]) for n in names if n in params]
    if not wanted:
        return set()
    try:
        with torch.enable_grad():
            roots = [t.grad_fn for t in O.leaves(call(m, x)) if isinstance(t, torch.Tensor) and t.grad_fn is not None]
    except Exception:  # noqa: BLE001 - a model this reading cannot run: its identical rows stay symmetric
        return set()
    consumers = _consumers(roots)
    return {n for n, p in wanted if _ends_branches(p, consumers)}


def _past(nodes: list, kinds: tuple, consumers: dict[object, list]) -> list:
    """The first nodes, walking towards the output from ``nodes``, that are not of ``kinds``."""
    found, stack, seen = [], list(nodes), set()
    while stack:
        f = stack.pop()
        if f in seen:
            continue
        seen.add(f)
        if type(f).__name__.startswith(kinds):
            stack.extend(consumers.get(f, []))
        else:
            found.append(f)
    return found


def _computed(node) -> bool:
    """Whether the tensor an autograd node gives comes from a computation, not from a parameter alone (a bias)."""
    seen, stack = set(), [node]
    while stack:
        f = stack.pop()
        if f is None or f in seen:
            continue
        seen.add(f)
        if getattr(f, "variable", None) is None and not type(f).__name__.startswith(_SHAPE):
            return True
        stack.extend(g for g, _ in f.next_functions)
    return False


def _ends_branches(p: torch.Tensor, consumers: dict[object, list]) -> bool:
    start = [f for f in consumers if getattr(f, "variable", None) is p]
    products = _past([c for f in start for c in consumers.get(f, [])], _SHAPE, consumers)
    if not products or not all(type(f).__name__.startswith(_PRODUCT) for f in products):
        return False
    for product in products:
        sums = _past(consumers.get(product, []), _SHAPE + _SCALE, consumers)
        if not sums:
            return False
        for s in sums:
            if not type(s).__name__.startswith(_SUM):
                return False
            others = [g for g, _ in s.next_functions if not _reaches(g, product)]
            # None: a tensor that needs no gradient, as a frozen base layer's output
            if not any(g is None or _computed(g) for g in others):
                return False
    return True


def _reaches(node, target, limit: int = 10_000) -> bool:
    """Whether ``target`` is ``node`` or an input of it, within ``limit`` nodes."""
    seen, stack = set(), [node]
    while stack and len(seen) < limit:
        f = stack.pop()
        if f is target:
            return True
        if f is None or f in seen:
            continue
        seen.add(f)
        stack.extend(g for g, _ in f.next_functions)
    return False
