"""BCE with logits given sigmoid(outputs): a sigmoid applied inside the loss expression, before a loss that applies
its own.

``nn.BCEWithLogitsLoss`` (``F.binary_cross_entropy_with_logits``) reads its input as logits. Written as
``crit(torch.sigmoid(out), t)`` it gets values in [0, 1], so its own sigmoid never leaves [0.5, 0.73]: on 0/1
targets the loss cannot go below ln 2 on a 0 target and softplus(1) - 1 = 0.313 on a 1 target (about 0.5 on
balanced ones, :func:`~trainwell.doctor.binary_floor.squashed_floor`), and the gradient is squashed by both
sigmoids. The model still ranks the examples, so a tiny subset reaches that floor with every sign right and a loss
curve only looks slow. The loss is recognised by its gradient on the raw outputs z, a s (1 - s) (sigmoid(s) - y)
with s = sigmoid(z), and its value (:func:`~trainwell.doctor.binary_floor.read_binary`): in a pre-flight check
from one probe of the user's loss on the model's outputs, in a watched loop from the step's own backward().

Example:
    >>> import torch
    >>> from torch import nn
    >>> crit = nn.BCEWithLogitsLoss()
    >>> model = nn.Linear(4, 3)
    >>> x, y = torch.randn(16, 4), torch.randint(0, 2, (16, 3)).float()
    >>> sigmoid_in_logits_loss(model, x, y, lambda o, t: crit(torch.sigmoid(o), t)) is not None
    True
    >>> sigmoid_in_logits_loss(model, x, y, crit) is None
    True
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.binary_floor import read_binary
from trainwell.doctor.inputs import Inputs, call

#: what is wrong, and the fix, in words (the check's advice and the loop verdict's)
FOUND = "BCEWithLogitsLoss is given sigmoid(outputs)"
FIX = ("it applies its own sigmoid, so its input stays in [0, 1]: the loss cannot go below 0.31 on a 1 target and "
       "ln 2 on a 0 target, and the gradients are squashed; pass the raw logits (or use BCELoss on the sigmoid)")


def sigmoid_in_logits_loss(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable) -> \
        str | None:
    """Advice naming BCE with logits given sigmoid(outputs) (a custom loss: the sigmoid sits in its expression),
    read from the loss's value and its gradient on the model's own outputs for ``x`` (an eval-mode copy); None for
    any other loss, or when the loss cannot be probed (this only words a verdict)."""
    try:
        with torch.no_grad():
            out = call(copy.deepcopy(model).eval(), x)
        scores = O.logits(out)
        if scores is None or not scores.is_floating_point():
            return None
        z = scores.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            value = loss_fn(O.replace_logits(out, z), y)
            if not isinstance(value, torch.Tensor) or value.numel() != 1 or not value.requires_grad:
                return None
            (g,) = torch.autograd.grad(value, z, allow_unused=True)
    except Exception:  # noqa: BLE001 - a loss that cannot be probed so is simply not recognised
        return None
    read = read_binary(z.detach(), g, float(value.detach()))
    if read is None or read["on"] != "sigmoid_logits":
        return None
    return f"{FOUND} (read from its gradient): {FIX}"
