"""Parameters that scale noise drawn per weight, not a layer's weights. Bayes by Backprop (Blundell et al. 2015,
"Weight Uncertainty in Neural Networks") samples each weight in training as ``w = mu + softplus(rho) * eps``,
``eps ~ N(0, 1)`` drawn per weight, and initializes ``rho`` to one constant (torchbnn does too). ``rho``'s rows
are identical, yet its units are not symmetric: every weight gets its own draw, so the units compute different
functions and get different gradients from the first step.

Such a parameter is told from a constant layer weight by two readings of one training-mode copy: it meets the
layer's product (a matrix product, a convolution) only through an elementwise function, never as an operand
itself (past reshapes and transposes), and its gradient changes with the random draw. A zero-initialized
``nn.Linear`` weight is an operand of its product (also before a dropout, whose noise changes its gradient);
a weight computed from a constant tensor without noise (weight normalization) gets the same gradient twice."""

from __future__ import annotations

import copy

import torch
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.registration import graph_nodes

#: autograd nodes that only reshape, move or copy a tensor: a weight passed through them is still the weight
_SHAPE = ("TBackward", "TransposeBackward", "PermuteBackward", "ViewBackward", "ReshapeAliasBackward",
          "UnsafeViewBackward", "ExpandBackward", "SqueezeBackward", "UnsqueezeBackward", "CloneBackward",
          "ToCopyBackward", "SliceBackward", "SelectBackward", "AsStridedBackward")
#: elementwise functions a noise scale passes through before it multiplies its draw
_ELEMENTWISE = ("SoftplusBackward", "ExpBackward", "SigmoidBackward", "MulBackward", "AddBackward",
                "SubBackward", "Log1pBackward", "AbsBackward", "PowBackward", "SqrtBackward", "DivBackward",
                "ClampBackward", "ClampMinBackward", "EluBackward", "ReluBackward")


def noise_scales(model: nn.Module, x: torch.Tensor | Inputs, names: list[str]) -> set[str]:
    """Those of the parameters ``names`` that scale noise drawn per weight (see the module's docstring), read on
    a training-mode copy of ``model`` with its RNG forked; empty when the copy cannot run forward and backward."""
    m = copy.deepcopy(model).train()
    params = dict(m.named_parameters())
    wanted = [(n, params[n]) for n in names if n in params and params[n].requires_grad]
    if not wanted:
        return set()
    try:
        with torch.enable_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            first, roots = _gradients(m, x, [p for _, p in wanted])
            torch.manual_seed(1)
            again, _ = _gradients(m, x, [p for _, p in wanted])
    except Exception:  # noqa: BLE001 - a model this reading cannot run: its constant tensors stay symmetric
        return set()
    consumers = _consumers(roots)
    return {n for (n, p), a, b in zip(wanted, first, again, strict=True)
            if a is not None and b is not None and not torch.allclose(a, b)
            and _elementwise_only(p, consumers)}


def _gradients(m: nn.Module, x: torch.Tensor | Inputs, params: list[torch.Tensor]) -> tuple[list, list]:
    """The gradients of the sum of ``m``'s floating outputs with respect to ``params``, and the graph's roots."""
    outs = [t for t in O.leaves(call(m, x)) if t.is_floating_point() and t.grad_fn is not None]
    total = sum(t.float().sum() for t in outs)
    grads = torch.autograd.grad(total, params, allow_unused=True, retain_graph=True) if outs else [None] * len(params)
    return list(grads), [t.grad_fn for t in outs]


def _consumers(roots: list) -> dict[object, list]:
    """Each autograd node's consumers: the nodes that take its output as an input."""
    found: dict[object, list] = {}
    for f in graph_nodes(roots):
        for g, _ in f.next_functions:
            if g is not None:
                found.setdefault(g, []).append(f)
    return found


def _elementwise_only(p: torch.Tensor, consumers: dict[object, list]) -> bool:
    """Whether every use of ``p``, past reshapes, is an elementwise function (never a product's operand)."""
    start = [f for f in consumers if getattr(f, "variable", None) is p]
    stack, seen, uses = [c for f in start for c in consumers.get(f, [])], set(), 0
    while stack:
        f = stack.pop()
        if f in seen:
            continue
        seen.add(f)
        name = type(f).__name__
        if name.startswith(_SHAPE):
            stack.extend(consumers.get(f, []))
        elif name.startswith(_ELEMENTWISE):
            uses += 1
        else:
            return False
    return uses > 0
