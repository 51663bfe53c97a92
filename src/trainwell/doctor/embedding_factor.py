"""Token embeddings multiplied by sqrt(d_model) twice. "Attention is all you need" (Vaswani et al. 2017, 3.4)
multiplies the embedding's output by sqrt(d_model) once, so that it stands at the scale of the sinusoidal
positional encoding added to it (the Annotated Transformer's ``Embeddings.forward``); a model that scales in its
embedding module and again in ``forward`` multiplies it by d_model, and the positions drown in the tokens.

The scale of the output cannot tell the two apart: an embedding at torch's N(0, 1) init scaled once has the
per-coordinate std that a Xavier-initialized one scaled twice has (sqrt(d) either way). The factors themselves
can: during one eval-mode forward a :class:`~torch.overrides.TorchFunctionMode` follows each ``F.embedding``
output through its multiplications (and divisions) by a number, and names a chain whose factors multiply to
d_model, the table's width, with more than one factor or a single one of d_model (sqrt(d) written as d)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from trainwell.doctor.func_transforms import transformed
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.verdict import Verdict

NAME = "embedding scale"
_MULS = {torch.mul, torch.Tensor.mul, torch.Tensor.mul_, torch.Tensor.__mul__, torch.Tensor.__rmul__,
         torch.Tensor.__imul__}
_DIVS = {torch.div, torch.true_divide, torch.Tensor.div, torch.Tensor.div_, torch.Tensor.__truediv__,
         torch.Tensor.__itruediv__}
_ADDS = {torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__, torch.Tensor.__radd__,
         torch.Tensor.__iadd__}


def _number(value) -> float | None:
    """``value`` as a float when it is a number or a one-element tensor (a scale), else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point():
        return float(value.detach())
    return None


class _Factors(TorchFunctionMode):
    """While active: the numbers each embedding lookup's output is multiplied by, chain by chain, and the std of
    the first tensor added to the scaled output (the positional encoding)."""

    def __init__(self):
        super().__init__()
        self.chains: dict[int, tuple[torch.Tensor, int, list[float]]] = {}  # id -> (tensor, width, factors)
        self.added: dict[int, float] = {}  # id of the scaled output -> std of what was added to it

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if transformed():  # a torch.func transform's per-example pass: not read
            return func(*args, **(kwargs or {}))
        out = func(*args, **(kwargs or {}))
        if not isinstance(out, torch.Tensor) or not out.is_floating_point():
            return out
        if func in (F.embedding, torch.embedding) and out.dim() >= 1:
            self.chains[id(out)] = (out, int(out.shape[-1]), [])
        elif func in _MULS or func in _DIVS:
            self._scaled(func, args, out)
        elif func in _ADDS and len(args) >= 2:
            for a, b in (args[:2], args[1::-1]):
                if isinstance(a, torch.Tensor) and id(a) in self.chains and self.chains[id(a)][0] is a and \
                        isinstance(b, torch.Tensor) and b.numel() > 1 and id(b) not in self.chains:
                    self.added.setdefault(id(a), float(b.detach().double().std()))
        return out

    def _scaled(self, func, args, out: torch.Tensor) -> None:
        if len(args) < 2:
            return
        pairs = [(args[0], args[1])] if func in _DIVS else [(args[0], args[1]), (args[1], args[0])]
        for t, s in pairs:
            value = _number(s)
            if isinstance(t, torch.Tensor) and value not in (None, 0.0) and id(t) in self.chains and \
                    self.chains[id(t)][0] is t:
                _, width, factors = self.chains[id(t)]
                self.chains[id(out)] = (out, width, factors + [value if func in _MULS else 1.0 / value])
                return


def scaled_twice(model: nn.Module, x: torch.Tensor | Inputs) -> Verdict | None:
    """A fail when an embedding lookup's output is multiplied by d_model, its width, as sqrt(d_model) applied
    twice (or d_model written for sqrt(d_model)); None when every lookup is scaled by sqrt(d) once or not at all,
    or by factors whose product is not d."""
    was = model.training
    model.eval()
    mode = _Factors()
    try:
        with torch.no_grad(), mode:
            call(model, x[: min(len(x), 8)])
    finally:
        model.train(was)
    for key, (out, width, factors) in mode.chains.items():
        total = math.prod(factors)
        if width < 4 or not factors or abs(total / width - 1.0) > 0.02:
            continue
        twice = ", in the embedding module or in forward, not both" if len(factors) > 1 else ""
        written = " x ".join(f"{f:.3g}" for f in factors)
        added = mode.added.get(key)
        scale = (f"; per-coordinate std {float(out.double().std()):.3g} against {added:.3g} for what is added to "
                 f"it (the positional encoding)") if added is not None else ""
        return Verdict(NAME, "fail", f"an embedding of width d = {width} is multiplied by {written} = {total:.4g}"
                       f" = d{scale}", f"sqrt(d) = {math.sqrt(width):.3g} once",
                       f"the token embeddings are scaled by d = {width}, not sqrt(d): multiply by "
                       f"math.sqrt(d_model) once{twice} (Vaswani et al. "
                       f"2017, 3.4)")
    return None
