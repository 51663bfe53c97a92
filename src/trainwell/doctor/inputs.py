"""A batch of several input tensors, as the pre-flight checks see it: models with more than one input
(``forward(self, ids, mask)``) and dict batches (``model(**batch)``).

``doctor.check`` takes ``x`` as one tensor (the model is called ``model(x)``, exactly as before), a tuple or list
of tensors (called ``model(*x)``) or a dict of tensors (called ``model(**x)``; or ``model(x)`` when ``forward``
takes one argument that the keys do not name, as in ``forward(self, batch)``). Every tensor holds the same
examples along its first dimension. :class:`Inputs` holds the tuple or dict: it has a length, slices and indexes
along that first dimension, maps a function over its fields, and calls a model, so that each check keeps one code
path: :func:`call` runs a model on either kind of ``x``.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class TwoTower(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.a, self.b = nn.Linear(3, 2), nn.Linear(5, 2)
    ...     def forward(self, left, right):
    ...         return self.a(left) + self.b(right)
    >>> x = as_inputs({"left": torch.randn(8, 3), "right": torch.randn(8, 5)})
    >>> len(x), len(x[:4]), call(TwoTower(), x[:4]).shape
    (8, 4, torch.Size([4, 2]))
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn


class Inputs:
    """Several input tensors with the same first (batch) dimension: a tuple (the model is called ``model(*x)``)
    or a dict (``model(**x)``, or ``model(x)`` with ``whole=True``). Indexing (an int, a slice or an index
    tensor) and :meth:`map` return a new ``Inputs`` of the same kind; the tensors themselves are never changed."""

    def __init__(self, fields: tuple | dict, whole: bool = False):
        self.fields, self.whole = fields, whole

    def items(self) -> list[tuple[str, torch.Tensor]]:
        """(name, tensor) of every field: the dict's keys, or ``x[0]``, ``x[1]``, ... for a tuple."""
        if isinstance(self.fields, dict):
            return [(str(k), v) for k, v in self.fields.items()]
        return [(f"x[{i}]", v) for i, v in enumerate(self.fields)]

    def tensors(self) -> list[torch.Tensor]:
        return [v for _, v in self.items()]

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Inputs:
        """The same kind of inputs with ``fn`` applied to every tensor."""
        if isinstance(self.fields, dict):
            return Inputs({k: fn(v) for k, v in self.fields.items()}, self.whole)
        return Inputs(tuple(fn(v) for v in self.fields), self.whole)

    def __len__(self) -> int:
        return len(self.tensors()[0])

    def __getitem__(self, index) -> Inputs:
        return self.map(lambda t: t[index])

    def call(self, model: Callable):
        """The model's output on these inputs."""
        if self.whole:
            return model(self.fields)
        if isinstance(self.fields, dict):
            return model(**self.fields)
        return model(*self.fields)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{name}: {v.dtype} {list(v.shape)}".replace("torch.", "") for name, v in self.items())
        return f"Inputs({shapes})"


def call(model: Callable, x: torch.Tensor | Inputs):
    """``model(x)`` for one tensor; ``model(*x)`` / ``model(**x)`` for :class:`Inputs`."""
    return x.call(model) if isinstance(x, Inputs) else model(x)


def fields(x: torch.Tensor | Inputs) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor) of every input: ``[("x", x)]`` for one tensor."""
    return x.items() if isinstance(x, Inputs) else [("x", x)]


def cast(x: torch.Tensor | Inputs, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor | Inputs:
    """``fn`` applied to the floating-point inputs only (integer ids and boolean masks stay as they are)."""
    if isinstance(x, Inputs):
        return x.map(lambda t: fn(t) if t.is_floating_point() else t)
    return fn(x) if x.is_floating_point() else x


_ALLOWED = ("x must be a tensor, a tuple or list of tensors (the model is called model(*x)) or a dict of tensors "
            "(model(**x)), each with the examples along its first dimension")


def _named_fields(value, var: str, noun: str, allowed: str, key_name) -> tuple[list[tuple[str, torch.Tensor]], str]:
    """The (name, tensor) fields of a tuple/list or dict ``value`` (``var`` is ``x`` or ``y``) and its kind, each
    field a tensor of at least one dimension; a one-line error naming the field otherwise."""
    if isinstance(value, (tuple, list)):
        named, kind = [(f"{var}[{i}]", v) for i, v in enumerate(value)], "tuple"
    elif isinstance(value, dict):
        named, kind = [(key_name(k), v) for k, v in value.items()], "dict"
    else:
        raise TypeError(f"doctor.check: {var} is a {type(value).__name__}: {allowed}")
    if not named:
        raise ValueError(f"doctor.check: {var} is an empty {kind}: {allowed}")
    for name, v in named:
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"doctor.check: {noun} {name} is a {type(v).__name__}, not a tensor: {allowed}")
        if v.dim() == 0:
            raise ValueError(f"doctor.check: {noun} {name} is a scalar tensor: {allowed}")
    return named, kind


def as_inputs(x, model: nn.Module | None = None) -> torch.Tensor | Inputs:
    """``x`` as the checks take it: a tensor as it is, a tuple/list or dict of tensors as :class:`Inputs`.
    A dict goes to ``model(**x)``, or to ``model(x)`` when ``model.forward`` cannot take the keys as keyword
    arguments but takes one argument; a tuple likewise to ``model(*x)``, else ``model(x)``.

    Raises:
        TypeError: ``x`` is something else, or holds something that is not a tensor.
        ValueError: the tensors are scalars or differ in their first (batch) dimension, or there are none.
    """
    if isinstance(x, torch.Tensor):
        if x.dim() == 0:
            raise ValueError(f"doctor.check: x is a scalar tensor: {_ALLOWED}")
        return x
    if isinstance(x, dict) and not all(isinstance(k, str) for k in x):
        raise TypeError(f"doctor.check: x is a dict with keys {list(x)[:4]}: the keys must be strings (they "
                        f"become keyword arguments)")
    named, kind = _named_fields(x, "x", "input", _ALLOWED, repr)
    sizes = {name: len(v) for name, v in named}
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{name}: {n}" for name, n in sizes.items())
        batch = len(named[0][1])
        state = next((name for name, v in named if v.dim() >= 2 and len(v) != batch and v.shape[1] == batch), None)
        hint = (f"; {state} has the batch on dim 1, as a recurrent state (layers, B, H) has: let the model start "
                "its state itself (a state argument that defaults to None), so that check calls model(x)"
                if state else "")
        raise ValueError(f"doctor.check: the inputs hold different numbers of examples ({shown}): give every "
                         f"tensor the same first (batch) dimension{hint}")
    fields = dict(x) if kind == "dict" else tuple(x)
    return Inputs(fields, whole=model is not None and _takes_whole(model, fields))


def _takes_whole(model: nn.Module, fields: tuple | dict) -> bool:
    """Whether ``forward`` takes the tuple or dict as one argument: it cannot bind the fields spread out
    (``*x`` / ``**x``) but binds one argument. Spread out when the signature cannot be read."""
    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return False
    try:
        sig.bind(**fields) if isinstance(fields, dict) else sig.bind(*fields)
        return False
    except TypeError:
        pass
    try:
        sig.bind(fields)
        return True
    except TypeError:
        return False


class Targets(Inputs):
    """Several target tensors with the same first (batch) dimension, for a loss that takes them together
    (``loss_fn(out, (y_class, y_box))`` or ``loss_fn(out, {"cls": ..., "reg": ...})``): a tuple or a dict, sliced
    along the examples exactly as :class:`Inputs` is. :attr:`fields` is the structure the loss receives."""

    def items(self) -> list[tuple[str, torch.Tensor]]:
        """(name, tensor) of every target: ``y['cls']``, ... for a dict, ``y[0]``, ``y[1]``, ... for a tuple."""
        if isinstance(self.fields, dict):
            return [(f"y[{k!r}]", v) for k, v in self.fields.items()]
        return [(f"y[{i}]", v) for i, v in enumerate(self.fields)]

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Targets:
        """The same kind of targets with ``fn`` applied to every tensor."""
        if isinstance(self.fields, dict):
            return Targets({k: fn(v) for k, v in self.fields.items()})
        return Targets(type(self.fields)(fn(v) for v in self.fields))  # a list stays a list

    def __getitem__(self, index) -> Targets:
        return self.map(lambda t: t[index])

    def __repr__(self) -> str:
        shapes = ", ".join(f"{name}: {v.dtype} {list(v.shape)}".replace("torch.", "") for name, v in self.items())
        return f"Targets({shapes})"


class StructuredLoss:
    """The user's ``loss_fn`` for :class:`Targets`: called with the targets' own tuple or dict
    (``loss_fn(out, y.fields)``), so that every check that calls ``loss_fn(model(x), y)`` on a slice of the
    targets runs unchanged. A single tensor passes through as it is."""

    def __init__(self, loss_fn: Callable):
        self.loss_fn = loss_fn

    def __call__(self, out, y):
        return self.loss_fn(out, y.fields if isinstance(y, Targets) else y)


_ALLOWED_Y = ("y must be a tensor of targets, or a tuple or list or dict of tensors (passed to loss_fn as it is), "
              "each with the examples along its first dimension")


def as_targets(y) -> torch.Tensor | Targets:
    """``y`` as the checks take it: a tensor as it is, a tuple/list or dict of tensors as :class:`Targets`
    (a list stays a list).

    Raises:
        TypeError: ``y`` is something else, or holds something that is not a tensor.
        ValueError: the tensors are scalars or differ in their first (batch) dimension, or there are none.
    """
    if isinstance(y, torch.Tensor):
        return y
    named, kind = _named_fields(y, "y", "target", _ALLOWED_Y, lambda k: f"y[{k!r}]")
    sizes = [(name, len(v)) for name, v in named]
    odd = next((name for name, n in sizes if n != sizes[0][1]), None)
    if odd is not None:
        shown = ", ".join(f"{name}: {n}" for name, n in sizes)
        raise ValueError(f"doctor.check: target {odd} holds a different number of examples from {sizes[0][0]} "
                         f"({shown}): give every target tensor the same first (batch) dimension")
    return Targets(dict(y) if kind == "dict" else list(y) if isinstance(y, list) else tuple(y))
