"""Weights drawn far too wide for their fan-in: ``nn.init.normal_(m.weight)`` (torch's default std is 1, whatever
the layer's size), ``torch.randn(n_out, n_in)`` weights. A layer of fan-in n whose zero-mean weights have std s
multiplies the scale of its inputs by about s * sqrt(n) (the "gain"): 8x per layer for std 1 on 64 inputs, so the
first logits are in the hundreds, the first cross-entropy with them, and the first updates kill ReLUs or overflow.
A variance-preserving init keeps the gain near 1: std sqrt(2 / n) for ReLU layers (He et al. 2015, gain 1.41),
sqrt(1 / n) for tanh (Glorot & Bengio 2010); torch's own ``reset_parameters`` draws U(-1/sqrt(n), 1/sqrt(n)),
gain 0.58.

Read on the weights as the loop began (as :mod:`~trainwell.doctor.positive_init` reads them): two or more weight
tensors of ``nn.Linear`` or convolution layers, of fan-in :data:`LEAST_FAN_IN` or more, centred (|mean| below the
std) with gain :data:`GAIN` or more (about 3x He's). Other weights (embeddings, whose rows are not summed) are left
out.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    >>> wide_verdict(wide_weights(net.named_parameters()), net) is None
    True
    >>> for m in net:
    ...     _ = nn.init.normal_(m.weight) if isinstance(m, nn.Linear) else None
    >>> wide_verdict(wide_weights(net.named_parameters()), net).status
    'warn'
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from trainwell.doctor.positive_init import NAME, fanned_weights
from trainwell.doctor.verdict import Verdict

#: the fan-in from which a layer's sum is read for its gain
LEAST_FAN_IN = 16
#: std x sqrt(fan-in) at least this (He's ReLU init: 1.41; torch's default: 0.58)
GAIN = 4.0
#: wide weight tensors needed (one may be a deliberate scale)
LEAST_LAYERS = 2
#: the layers whose weights sum their fan-in
SUMMING = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def wide_weights(params: Iterable[tuple[str | None, torch.Tensor]]) -> list[tuple[int, str | None, int, float]]:
    """(tensor id, name, fan-in, gain) of each floating-point weight tensor of two or more axes and fan-in
    :data:`LEAST_FAN_IN` or more (its axes past the first), centred, whose std x sqrt(fan-in) is :data:`GAIN` or
    more."""
    found = []
    for name, p, fan_in in fanned_weights(params, LEAST_FAN_IN):
        with torch.no_grad():
            w = p.detach().double()
            std, mean = float(w.std()), float(w.mean())
        if abs(mean) < std and std * fan_in ** 0.5 >= GAIN:
            found.append((id(p), name, fan_in, std * fan_in ** 0.5))
    return found


def wide_verdict(found: list[tuple[int, str | None, int, float]] | None, model: nn.Module) -> Verdict | None:
    """The warning for :data:`LEAST_LAYERS` or more of ``found`` (read by :func:`wide_weights`) that are the
    weights of ``model``'s linear or convolution layers; None otherwise."""
    if not found:
        return None
    summing = {id(m.weight): n for n, m in model.named_modules() if isinstance(m, SUMMING)}
    found = [(key, summing[key], n, gain) for key, _, n, gain in found if key in summing]
    if len(found) < LEAST_LAYERS:
        return None
    order = {id(p): i for i, p in enumerate(model.parameters())}
    found.sort(key=lambda f: order.get(f[0], len(order)))
    shown = ", ".join(f"'{name}' (fan-in {n}, gain {gain:.3g})" for _, name, n, gain in found[:3])
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    product = 1.0
    for *_, gain in found:
        product *= gain
    return Verdict(NAME, "warn",
                   f"{len(found)} layers start with weights far too wide for their fan-in: {shown}{more} (gain = "
                   f"std x sqrt(fan-in)); each multiplies its inputs' scale by about its gain, {product:.3g}x "
                   "through them (nn.init.normal_ without std draws N(0, 1))",
                   "a gain near 1: std ~ sqrt(2 / fan_in) (He et al. 2015)",
                   "draw the weights for their fan-in: nn.init.kaiming_normal_(w, nonlinearity='relu') (He et al. "
                   "2015), nn.init.xavier_normal_ for tanh (Glorot & Bengio 2010), or normal_(w, 0, std) with "
                   "std = sqrt(2 / fan_in); or keep torch's default init")


__all__ = ["wide_verdict", "wide_weights"]
