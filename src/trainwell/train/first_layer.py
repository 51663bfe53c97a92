"""The shape a model's first layer expects against the shape of the data given to it.

A wrong feature count or inputs without their batch (or channel) dimension make torch raise deep in the first
layer (``mat1 and mat2 shapes cannot be multiplied (8x5 and 4x16)``), in its own terms. When the forward fails,
:func:`first_layer_hint` runs it again on a copy of the model with hooks on its Linear and convolution layers: if
the layer that raised is one that received the data itself, unchanged, and its weight's shape refuses the data's
shape, the error is named in one line (what the layer expects, what the data has, what to change). One example
without its batch axis, ``(4,)`` for a ``Linear(4, ...)``, passes the first layer (torch's layers take unbatched
inputs) and fails further on (``BatchNorm1d``: ``expected 2D or 3D input (got 1D input)``): when the first layer
that read the data took it as one unbatched example, that is named too. In every other case it returns None and
the caller re-raises torch's error unchanged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

# layer type -> (the input dimensions it takes: batched, unbatched; the axis of its features from the end)
_LAYERS = {nn.Linear: ((2, 1), -1), nn.Conv1d: ((3, 2), -2), nn.Conv2d: ((4, 3), -3), nn.Conv3d: ((5, 4), -4)}


def _layer_that_raised(model: nn.Module, x: torch.Tensor) -> tuple[tuple[str, nn.Module] | None, ...]:
    """``(name, layer)`` of the Linear/Conv layer of a copy of ``model`` that raised while reading ``x`` itself
    (the data as given, not a tensor computed from it), and of the first such layer that read ``x``, when the
    copied forward fails; ``(None, None)`` when it runs, or the model cannot be copied."""
    try:
        twin = copy.deepcopy(model)
    except Exception:  # a model that cannot be copied: nothing is told
        return None, None
    names = {m: n for n, m in twin.named_modules()}
    running: list = []
    readers: list = []

    def enter(module, args):
        reads = bool(args) and args[0] is x
        running.append((module, reads))
        if reads and not readers:
            readers.append((names[module], module))

    def leave(module, args, out):
        running.pop()

    handles = [h for m in twin.modules() if type(m) in _LAYERS and not isinstance(m, nn.modules.lazy.LazyModuleMixin)
               for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
    try:
        with torch.no_grad():
            twin(x)
    except Exception:
        raised = (names[running[-1][0]], running[-1][0]) if running and running[-1][1] else None
        return raised, (readers[0] if readers else None)
    finally:
        for h in handles:
            h.remove()
    return None, None


def _unbatched_hint(found: tuple[str, nn.Module] | None, x: torch.Tensor, what: str) -> str | None:
    """The message for one example without its batch axis that the first layer read unbatched; None otherwise."""
    if found is None:
        return None
    name, layer = found
    shape, features, dims, axis = _expected(layer)
    if x.dim() != dims[1] or x.shape[axis] != features:
        return None
    return (f"{what} got inputs of shape {tuple(x.shape)}, one example without its batch axis: the model's first "
            f"layer {name!r} takes {shape} and read it unbatched, but a later layer needs the batch axis: give "
            f"x.unsqueeze(0) for one example")


def _expected(layer: nn.Module) -> tuple[str, int, tuple[int, ...], int]:
    """(the shape the layer takes, written out; its feature count; its input dimensions; its feature axis)."""
    dims, axis = _LAYERS[type(layer)]
    if isinstance(layer, nn.Linear):
        return f"(N, {layer.in_features})", layer.in_features, dims, axis
    spatial = {3: "L", 4: "H, W", 5: "D, H, W"}[dims[0]]
    return f"(N, {layer.in_channels}, {spatial})", layer.in_channels, dims, axis


def unbatched_hint(model: nn.Module, x, what: str = "train") -> str | None:
    """The one-line message for a forward of ``model`` that failed past its first layer, which read ``x`` as one
    unbatched example (see the module docstring); None otherwise."""
    if not isinstance(x, torch.Tensor) or isinstance(model, torch.jit.ScriptModule):
        return None
    found, first_reader = _layer_that_raised(model, x)
    return _unbatched_hint(first_reader, x, what) if found is None else None


def first_layer_hint(model: nn.Module, x, what: str = "train") -> str | None:
    """The one-line message for a forward of ``model`` on ``x`` that failed in a first layer whose shape refuses
    ``x``'s (see the module docstring); None when that cannot be told reliably."""
    if not isinstance(x, torch.Tensor) or isinstance(model, torch.jit.ScriptModule):
        return None
    found, first_reader = _layer_that_raised(model, x)
    if found is None:
        return _unbatched_hint(first_reader, x, what)
    name, layer = found
    shape, features, dims, axis = _expected(layer)
    linear = isinstance(layer, nn.Linear)  # a Linear takes any leading dimensions
    if (x.dim() >= 1 if linear else x.dim() in dims) and x.shape[axis] == features:
        return None  # the shapes agree: the layer raised for another reason
    kind = type(layer).__name__
    given = f"{kind}({'in_features' if linear else 'in_channels'}={features})"
    seen = (f"{what} batches hold inputs of shape {tuple(x.shape)}, but the model's first layer {name!r} is "
            f"{given}, which takes {shape}: ")
    if x.dim() == dims[0] - 1 and features == 1:
        return seen + "add the missing dimension, x.unsqueeze(1)"
    if (x.dim() >= 2 if linear else x.dim() == dims[0]):
        return seen + (f"the data has {x.shape[axis]} {'features' if linear else 'channels'}: give the "
                       f"layer {x.shape[axis]}, or the data {features}")
    return seen + f"give the data as {shape} (one row per example)"
