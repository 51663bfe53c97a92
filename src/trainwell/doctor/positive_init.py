"""Weights initialized all positive: ``nn.init.uniform_(m.weight)`` (torch's default bounds are U(0, 1)),
``normal_(...).abs()``, ``torch.rand`` weights. A layer of fan-in n whose weights have mean m > 0 adds up n positive
terms per unit: after a ReLU the mean activation grows about n * m times per layer (32x for U(0, 1) on 64 inputs),
so the first logits are enormous, the first cross-entropy is in the hundreds or thousands, and the first updates
push every unit's bias so far that the ReLUs die and the network outputs one constant. A variance-preserving init
draws zero-mean weights of std ~ sqrt(2 / n) (He et al. 2015; Glorot & Bengio 2010 for tanh); torch's own
``reset_parameters`` draws U(-1/sqrt(n), 1/sqrt(n)).

Read on the weights as the loop began (``doctor.watch``: when it was created; ``trainwell watch``: at the script's
first ``optimizer.step()``, before it updates them): two or more weight tensors of fan-in
:data:`LEAST_FAN_IN` or more whose every entry is >= 0 and whose mean times fan-in is :data:`GROWTH` or more.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    >>> positive_verdict(positive_weights(net.named_parameters()), net) is None
    True
    >>> for m in net:
    ...     _ = nn.init.uniform_(m.weight) if isinstance(m, nn.Linear) else None
    >>> positive_verdict(positive_weights(net.named_parameters()), net).status
    'warn'
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from trainwell.doctor.verdict import Verdict

NAME = "loop: weight init"
#: the fan-in from which a positive layer's sum grows the signal
LEAST_FAN_IN = 8
#: the mean weight times the fan-in at least this: each layer multiplies the mean activation by it or more
GROWTH = 2.0
#: positive weight tensors needed (one may be a deliberate non-negative layer)
LEAST_LAYERS = 2


def fanned_weights(params: Iterable[tuple[str | None, torch.Tensor]], least_fan_in: int) \
        -> Iterator[tuple[str | None, torch.Tensor, int]]:
    """(name, tensor, fan-in) of each trainable, materialized, dense floating-point tensor of ``params`` with two or
    more axes whose fan-in (the size of its axes past the first) is ``least_fan_in`` or more: the weights whose
    entries a layer sums over its inputs."""
    for name, p in params:
        if not isinstance(p, torch.Tensor) or is_lazy(p) or not p.is_floating_point() or p.dim() < 2 or \
                p.is_sparse or not p.requires_grad:
            continue
        fan_in = p[0].numel()
        if fan_in >= least_fan_in:
            yield name, p, fan_in


def positive_weights(params: Iterable[tuple[str | None, torch.Tensor]]) -> list[tuple[int, str | None, int, float]]:
    """(tensor id, name, fan-in, mean) of each floating-point weight tensor of two or more axes and fan-in
    :data:`LEAST_FAN_IN` or more (its axes past the first) whose entries are all >= 0 with mean x fan-in
    >= :data:`GROWTH`."""
    found = []
    for name, p, fan_in in fanned_weights(params, LEAST_FAN_IN):
        with torch.no_grad():
            w = p.detach()
            low, mean = float(w.min()), float(w.double().mean())
        if low >= 0 and mean * fan_in >= GROWTH:
            found.append((id(p), name, fan_in, mean))
    return found


def positive_verdict(found: list[tuple[int, str | None, int, float]] | None, model: nn.Module | None = None) \
        -> Verdict | None:
    """The warning for :data:`LEAST_LAYERS` or more weight tensors initialized all positive (``found``, read by
    :func:`positive_weights`; their names looked up in ``model`` where not known); None otherwise."""
    if not found or len(found) < LEAST_LAYERS:
        return None
    order = {id(p): (i, n) for i, (n, p) in enumerate(model.named_parameters())} if model is not None else {}
    names = {key: n for key, (_, n) in order.items()}
    found = sorted(found, key=lambda f: order.get(f[0], (len(order), ""))[0])  # in the model's order
    shown = ", ".join(f"'{name or names.get(key, '?')}' (fan-in {n}, mean {mean:.3g})"
                      for key, name, n, mean in found[:3])
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    growth = min(n * mean for _, _, n, mean in found)
    return Verdict(NAME, "warn",
                   f"{len(found)} weight tensors start with every entry >= 0: {shown}{more}; each layer sums its "
                   f"fan-in of positive terms, so the activations grow {growth:.3g}x or more per layer "
                   "(nn.init.uniform_ without bounds draws U(0, 1))",
                   "zero-mean weights of std ~ sqrt(2 / fan_in) (He et al. 2015)",
                   "draw zero-mean weights: nn.init.kaiming_uniform_(w, nonlinearity='relu') (He et al. 2015), "
                   "nn.init.xavier_uniform_ for tanh (Glorot & Bengio 2010), or uniform_(w, -b, b) with "
                   "b = 1 / sqrt(fan_in); or keep torch's default init")
