"""A batch whose examples are not along the first dimension of ``x``, as ``doctor.check`` reads it.

torch's recurrent and attention modules take their inputs sequence-first by default (``batch_first=False``:
``nn.RNN``/``nn.LSTM``/``nn.GRU``, ``nn.MultiheadAttention`` inside ``nn.TransformerEncoder``), so a batch of
such a model is (T, B, ...): the PyTorch language-model tutorial's (T, B) token ids, whose next-token targets are
flattened to (T * B,) for ``criterion(output.view(-1, ntokens), targets)``, or a character RNN's (T, B, letters)
one-hot names with one label each. A batch-first model's per-position targets may be flattened too: (B, T) ids
with (B * T,) targets. The checks slice examples along dimension 0; for such a batch they read a batch-first view
of it instead:

- ``x`` as (B, T, ...), the model run on it through a forward that transposes it back (its (T, B, ...) outputs
  returned as (B, T, ...));
- the targets as (B, ...) or, flattened per position, as (B, T, ...);
- the loss given back the outputs and targets in the model's own layout, so the user's loss runs unchanged.

Only a batch the checks could not read otherwise (``len(x) != len(y)``) is viewed so: a sequence-first module fed
batch-first data, ``x`` and ``y`` of one length, is still read as it is given, and batch independence names it
(where one target per example fits dimension 1 as well, batch independence reads both:
:func:`~trainwell.doctor.sequence_first_batches.example_readings`).
``doctor.watch`` reads a watched forward's examples the same way (:func:`fitting_views`), and also along
dimension 1 where (B, T, ...) and (T, B, ...) fit the targets alike (as many examples as positions, or targets
per position laid out like ``x``).

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.LSTM(4, 8)  # sequence-first
    >>> view = batch_first_view(model, torch.randn(5, 3, 4), torch.zeros(3, dtype=torch.long))
    >>> tuple(view.x.shape), tuple(view.y.shape), view.transposed
    ((3, 5, 4), (3,), True)
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

#: modules that read (T, B, ...) unless built with ``batch_first=True``
SEQUENCE_FIRST = (nn.RNNBase, nn.MultiheadAttention)


@dataclass
class BatchView:
    """A batch-first view of a batch: ``x`` (B, ...), ``y`` (B, ...), ``loss_fn`` taking the view's outputs and
    targets; ``transposed``: the model reads ``x`` transposed back to (T, B, ...) (see :func:`installed`);
    ``per_position``: the targets were flattened over (examples, positions)."""

    x: torch.Tensor
    y: torch.Tensor
    loss_fn: Callable
    transposed: bool
    per_position: bool

    def describe(self) -> str:
        """How ``x`` and ``y`` were laid out, for an error message."""
        where = "along dimension 1 ((T, B, ...): nn.RNN/LSTM/GRU or nn.MultiheadAttention without " \
            "batch_first=True)" if self.transposed else "along dimension 0"
        return f"x holds {len(self.x)} example(s) {where}" + \
            (", y one target per position, flattened" if self.per_position else "")


def sequence_first(model: nn.Module) -> bool:
    """The model's recurrent and attention modules all read (T, B, ...): it has some, none ``batch_first``."""
    layers = [m for m in model.modules() if isinstance(m, SEQUENCE_FIRST)]
    return bool(layers) and not any(getattr(m, "batch_first", False) for m in layers)


def sequence_first_layers(model: nn.Module) -> list[tuple[str, str]]:
    """(name, class name) of the model's recurrent and attention modules built without ``batch_first=True``, which
    read (T, B, ...); attention inside a Transformer layer is named by that layer (``nn.TransformerEncoderLayer``
    keeps the flag on its ``self_attn``)."""
    modules = dict(model.named_modules())
    found: list[tuple[str, str]] = []
    for name, m in modules.items():
        if not isinstance(m, SEQUENCE_FIRST) or getattr(m, "batch_first", False):
            continue
        parent = name.rpartition(".")[0]
        layer = modules.get(parent) if "." in name else None
        if isinstance(layer, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
            name, m = parent, layer
        if (name, type(m).__name__) not in found:
            found.append((name, type(m).__name__))
    return found


def fitting_views(model: nn.Module, x, y) -> list[BatchView]:
    """Every reading of ``x``'s examples that ``y`` fits: :func:`read_batch_first`'s (the batch-first view, else
    ``x`` as given) and, for a sequence-first model with ``len(x) == len(y)``, also along dimension 1 when ``y``
    fits it as well: one target per example with as many examples as positions (``x.shape[1] == len(y)``), or one
    per position laid out like ``x``'s first two dimensions ((B, T) and (T, B) targets fit alike). Empty when
    ``y`` fits none."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or x.dim() < 2 or y.dim() == 0:
        return []
    view = batch_first_view(model, x, y)
    if view is not None:
        return [view]
    if len(x) != len(y):
        return []
    views = [BatchView(x, y, None, transposed=False, per_position=False)]
    if not sequence_first(model) or "forward" in vars(model):
        return views
    per_position = y.dim() >= 2 and y.shape[1] == x.shape[1]
    if per_position or x.shape[1] == len(y):
        views.append(BatchView(x.transpose(0, 1).contiguous(), y.transpose(0, 1) if per_position else y, None,
                               transposed=True, per_position=per_position))
    return views


def batch_first_view(model: nn.Module, x, y, loss_fn: Callable | None = None) -> BatchView | None:
    """The batch-first view of ``x, y`` when the examples are along ``x``'s dimension 1 of a sequence-first model
    (one target per example, or per position flattened to (T * B, ...)), or ``y`` flattens a batch-first model's
    (B, T) positions to (B * T, ...); None when ``x`` and ``y`` are one tensor each of one length, or fit neither."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or x.dim() < 2 or y.dim() == 0 or \
            len(x) == len(y) or "forward" in vars(model):
        return None
    rows, cols = x.shape[0], x.shape[1]
    first = sequence_first(model)
    rest = tuple(y.shape[1:])
    if first and len(y) == cols:  # one target (row) per sequence
        return BatchView(x.transpose(0, 1).contiguous(), y, loss_fn, transposed=True, per_position=False)
    if len(y) != rows * cols or rows < 2 or cols < 2:
        return None
    if first:  # (T, B) positions flattened in the model's order: viewed as (B, T)
        view = y.reshape(rows, cols, *rest).transpose(0, 1).contiguous()

        def loss(out, t):
            return loss_fn(_sequence_first(out, len(t)), t.transpose(0, 1).reshape(-1, *rest))

        return BatchView(x.transpose(0, 1).contiguous(), view, loss if loss_fn is not None else None, True, True)

    def flat_loss(out, t):
        return loss_fn(out, t.reshape(-1, *rest))

    return BatchView(x, y.reshape(rows, cols, *rest), flat_loss if loss_fn is not None else None, False, True)


def read_batch_first(model: nn.Module, x, y, loss_fn: Callable) -> tuple:
    """``(x, y, loss_fn, view)``: the batch-first view's (see :func:`batch_first_view`) and the view, or the
    arguments as given and None. Raises ValueError when the view holds fewer than 2 examples (one name of a
    character RNN, (T, 1, letters)): the checks compare examples."""
    view = batch_first_view(model, x, y, loss_fn)
    if view is None:
        return x, y, loss_fn, None
    if len(view.x) < 2:
        raise ValueError(f"doctor.check: {view.describe()}: give at least 2 (sequences of one length stacked along "
                         "dimension 1)")
    return view.x, view.y, view.loss_fn, view


@contextlib.contextmanager
def installed(model: nn.Module, view: BatchView | None):
    """While open, ``model(x_view)`` runs the model's own forward on ``x_view`` transposed back to (T, B, ...)
    and returns its per-position outputs batch-first (when ``view.transposed``; else nothing changes). The
    forward is bound to the model, so a deep copy of it (the checks train copies) runs the copy."""
    if view is None or not view.transposed:
        yield
        return
    model.forward = types.MethodType(_batch_first_forward if view.per_position else _examples_first_forward, model)
    try:
        yield
    finally:
        del model.forward


def _examples_first_forward(self, x, *args, **kwargs):
    """The model's forward on (B, T, ...) inputs: one output row per example, as its forward returns them."""
    return type(self).forward(self, x.transpose(0, 1).contiguous(), *args, **kwargs)


def _batch_first_forward(self, x, *args, **kwargs):
    """The model's forward on (B, T, ...) inputs, its (T, B, ...) outputs returned as (B, T, ...)."""
    out = type(self).forward(self, x.transpose(0, 1).contiguous(), *args, **kwargs)
    return _map(out, len(x), to_batch_first=True)


def _sequence_first(out, batch: int):
    """The view's (B, T, ...) outputs back in the model's (T, B, ...) layout."""
    return _map(out, batch, to_batch_first=False)


def _map(out, batch: int, to_batch_first: bool):
    """Swap dimensions 0 and 1 of every tensor in ``out`` (a tensor, or a tuple, list or dict of them) laid out
    per position: (T, B, ...) into (B, T, ...) (``to_batch_first``), or back."""
    if isinstance(out, torch.Tensor):
        axis = 1 if to_batch_first else 0
        # contiguous, as the model's own outputs and inputs are (a loss may call .view on them)
        return out.transpose(0, 1).contiguous() if out.dim() >= 2 and out.shape[axis] == batch else out
    if isinstance(out, (tuple, list)) and not hasattr(out, "_fields"):  # not a named tuple (PackedSequence)
        return type(out)(_map(o, batch, to_batch_first) for o in out)
    if isinstance(out, dict):
        return {k: _map(v, batch, to_batch_first) for k, v in out.items()}
    return out
