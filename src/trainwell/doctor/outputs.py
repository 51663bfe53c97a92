"""What a model returns, as the doctor needs it: the logits inside any output structure, and the structure rebuilt.

Models return a tensor, a tuple or list (``(logits, features)``, GoogLeNet's auxiliary heads), a dict
(``{"logits": ..., "aux": ...}``), a named tuple or a dataclass (Hugging Face's ``ModelOutput``). The user's loss
receives the raw output; checks that need the class scores (accuracy, the initial-loss expectation, batch
independence) find them here: a field named ``logits`` (or ``out``, ``output``, ``y``, ``pred``), else the first
floating-point tensor in order.

Example:
    >>> import torch
    >>> out = {"aux": torch.zeros(2, 5), "logits": torch.ones(2, 3)}
    >>> logits(out).shape
    torch.Size([2, 3])
    >>> map_tensors((torch.ones(2), torch.ones(3)), lambda t: t * 0)[1].tolist()
    [0.0, 0.0, 0.0]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

_NAMES = ("logits", "out", "output", "outputs", "y", "pred", "prediction", "scores")


def _fields(out) -> list[tuple[object, object]] | None:
    """(key, value) pairs of a container output, or None for a leaf."""
    if isinstance(out, dict):
        return list(out.items())
    if isinstance(out, tuple) and hasattr(out, "_fields"):  # a named tuple
        return list(zip(out._fields, out, strict=True))
    if isinstance(out, (tuple, list)):
        return list(enumerate(out))
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return [(f.name, getattr(out, f.name)) for f in dataclasses.fields(out)]
    return None


def leaves(out) -> list[torch.Tensor]:
    """Every tensor in the output, depth first."""
    if isinstance(out, torch.Tensor):
        return [out]
    fields = _fields(out)
    return [t for _, v in fields or [] for t in leaves(v)]


def named_leaves(out, path: str = "out") -> list[tuple[str, torch.Tensor]]:
    """Every tensor in the output with the expression that reaches it (``out[1]``, ``out['aux']``, ``out.logits``).

    >>> [name for name, _ in named_leaves({"logits": torch.ones(1), "aux": (torch.ones(1),)})]
    ["out['logits']", "out['aux'][0]"]
    """
    if isinstance(out, torch.Tensor):
        return [(path, out)]
    named = isinstance(out, tuple) and hasattr(out, "_fields") or dataclasses.is_dataclass(out)
    found = []
    for key, value in _fields(out) or []:
        step = f".{key}" if named else f"[{key!r}]"
        found += named_leaves(value, path + step)
    return found


def logits(out) -> torch.Tensor | None:
    """The class scores in a model's output: a tensor itself; in a container the field named ``logits`` (or a
    similar name), else its first floating-point tensor; None if there is none."""
    if isinstance(out, torch.Tensor):
        return out
    fields = _fields(out)
    if not fields:
        return None
    for key, value in fields:
        if isinstance(key, str) and key.lower() in _NAMES and isinstance(value, torch.Tensor):
            return value
    for _, value in fields:
        found = logits(value)
        if found is not None and found.is_floating_point():
            return found
    return None


def map_tensors(out, fn: Callable[[torch.Tensor], torch.Tensor], only: torch.Tensor | None = None):
    """The output rebuilt with ``fn`` applied to every floating-point tensor (or only to ``only``, by identity)."""
    if isinstance(out, torch.Tensor):
        hit = out is only if only is not None else out.is_floating_point()
        return fn(out) if hit else out
    if isinstance(out, dict):
        return type(out)((k, map_tensors(v, fn, only)) for k, v in out.items()) if type(out) is not dict \
            else {k: map_tensors(v, fn, only) for k, v in out.items()}
    if isinstance(out, tuple) and hasattr(out, "_fields"):
        return type(out)(*(map_tensors(v, fn, only) for v in out))
    if isinstance(out, (tuple, list)):
        return type(out)(map_tensors(v, fn, only) for v in out)
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return dataclasses.replace(out, **{f.name: map_tensors(getattr(out, f.name), fn, only)
                                           for f in dataclasses.fields(out) if f.init})
    return out


def replace_logits(out, new: torch.Tensor):
    """The output with its logits (see :func:`logits`) replaced by ``new``."""
    old = logits(out)
    return new if old is None or old is out else map_tensors(out, lambda _: new, only=old)


def describe(out) -> str:
    """A short description of an output's structure, e.g. ``tuple(Tensor[8, 3], Tensor[8, 16])``."""
    if isinstance(out, torch.Tensor):
        return f"Tensor{list(out.shape)}"
    fields = _fields(out)
    if fields is None:
        return type(out).__name__
    inner = ", ".join(f"{k}={describe(v)}" if isinstance(k, str) else describe(v) for k, v in fields[:4])
    return f"{type(out).__name__}({inner}{', ...' if len(fields) > 4 else ''})"


def relative_change(before: torch.Tensor, after: torch.Tensor) -> float:
    """The largest change between two outputs of one model, over the first's largest magnitude (in float64)."""
    a, b = before.double(), after.double()
    return float((a - b).abs().max()) / max(float(a.abs().max()), 1e-12)
