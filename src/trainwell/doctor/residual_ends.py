"""Layers whose output ends a residual branch: past reshapes, scalings and dropout, it is only added to another path
computed from the input (``x + f(x)``; a transformer layer's ``x + attn(x)`` and ``x + mlp(x)``); and layers whose
output starts one, the stream ``x`` itself, one use of which is that sum with a branch computed from it.

Such a layer's output std is the branch's, not the signal's: the stream it joins carries the scale, and a branch's
last layer is often small by design (a zero-initialized or 1/sqrt(2N)-scaled last layer: Goyal et al. 2017;
Radford et al. 2019); the stream's own std and gradient (it carries every branch's gradient back through the skip)
are not the branch's either. The variance-propagation check does not read the steps into and out of such layers as
the init's gain (the same network with its activations as modules, whose outputs sit inside the branches, is read so
already).

A gate ends a branch the same way, by a product instead of a sum: a layer whose output, squashed into a bounded
range (a sigmoid, hard sigmoid, tanh or softmax), only multiplies another path computed from the input
(squeeze-and-excitation's ``x * sigmoid(fc2(relu(fc1(pool(x)))))``, Hu et al. 2018). The gate's layers read a pooled
summary and return a factor near 0.5: their std and gradient are the gate's, not the stream's, and the steps into
and out of them are not read as the init's gain either."""

from __future__ import annotations

import torch

from trainwell.doctor import outputs as O
from trainwell.doctor.sampled_weights import _SHAPE, _consumers
from trainwell.doctor.zero_branches import _SCALE, _SUM, _computed, _past, _reaches

#: what a branch's output passes through before it is added: reshapes, a scale (LayerScale, alpha), dropout
_PASS = _SHAPE + _SCALE + ("NativeDropoutBackward",)
#: what squashes a gate's output into a bounded factor before it multiplies the stream
_SQUASH = ("SigmoidBackward", "HardsigmoidBackward", "TanhBackward", "SoftmaxBackward")


def stream_end_ids(outputs, tensors: list[torch.Tensor]) -> set[int]:
    """The ids of those ``tensors`` (outputs of one forward whose graph ends in ``outputs``) that end a branch or a
    gate (:func:`branch_end_ids` and :func:`gate_end_ids` together, the graph's uses walked once)."""
    uses = _uses(outputs, tensors)
    return _branch_ends(uses) | _gate_ends(uses)


def branch_end_ids(outputs, tensors: list[torch.Tensor]) -> set[int]:
    """The ids of those ``tensors`` (outputs of one forward whose graph ends in ``outputs``) every use of which,
    past reshapes, scalings and dropout, is a sum with another path computed from the input (not a bias or a
    positional table alone): a branch's end; and of those one use of which is a sum with a path computed from
    the tensor itself (``h + dt * f(h)``): the stream a branch starts from."""
    return _branch_ends(_uses(outputs, tensors))


def gate_end_ids(outputs, tensors: list[torch.Tensor]) -> set[int]:
    """The ids of those ``tensors`` (outputs of one forward whose graph ends in ``outputs``) every use of which,
    past reshapes, is a squashing function (:data:`_SQUASH`) whose every use, past reshapes, multiplies another path
    computed from the input and not from the tensor itself: a gate's end (see the module's docstring)."""
    return _gate_ends(_uses(outputs, tensors))


def _uses(outputs, tensors: list[torch.Tensor]) -> tuple[dict, list]:
    """The graph's consumers (node -> the nodes that use its output) from ``outputs`` back, and each of
    ``tensors`` with a node in it, as ``(tensor, its grad_fn)``."""
    roots = [t.grad_fn for t in O.leaves(outputs) if isinstance(t, torch.Tensor) and t.grad_fn is not None]
    consumers = _consumers(roots) if roots else {}
    return consumers, [(t, t.grad_fn) for t in tensors if t.grad_fn is not None and t.grad_fn in consumers]


def _branch_ends(uses: tuple[dict, list]) -> set[int]:
    consumers, traced = uses
    found = set()
    for t, f in traced:
        sums = _past(consumers[f], _PASS, consumers)
        if any(type(s).__name__.startswith(_SUM) and
               any(g is not None and g is not f and _reaches(g, f) for g, _ in s.next_functions) for s in sums):
            found.add(id(t))  # the skip's source: the other operand is a branch computed from it
        elif sums and all(type(s).__name__.startswith(_SUM) and
                        any(g is None or _computed(g) for g, _ in s.next_functions if not _reaches(g, f))
                        for s in sums):
            found.add(id(t))
    return found


def _gate_ends(uses: tuple[dict, list]) -> set[int]:
    consumers, traced = uses
    found = set()
    for t, f in traced:
        squashes = _past(consumers[f], _SHAPE, consumers)
        if not squashes or not all(type(q).__name__.startswith(_SQUASH) for q in squashes):
            continue
        products = _past([c for q in squashes for c in consumers.get(q, [])], _SHAPE, consumers)
        if products and all(type(m).__name__.startswith("MulBackward") and
                            any(g is not None and _computed(g) and not _reaches(g, f) for g, _ in m.next_functions)
                            for m in products):
            found.add(id(t))
    return found
