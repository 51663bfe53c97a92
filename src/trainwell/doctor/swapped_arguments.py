"""Binary cross-entropy with logits given its arguments the wrong way round: ``criterion(y, model(x))`` for
``criterion(model(x), y)``. torch's losses take (input, target); ``BCEWithLogitsLoss`` accepts a target that needs
a gradient, so nothing fails: the loss is softplus(y) - y z per element, its gradient -y / N whatever the outputs
z. The examples labelled 0 never get a gradient, those labelled 1 are pushed up by the same amount forever, and the
loss falls without bound (below 0) while the classifier stays at chance.

Read on an observed step from the outputs z, the gradient g the loss sent them, the loss's value and the targets y
given to ``w.step``: g = -a y and the value a sum(softplus(y) - y z), for the weight a of a mean, a mean of per-example
sums or a sum (:func:`~trainwell.doctor.binary_floor._weights`), with targets in [0, 1] that are not all 0.

Example:
    >>> import torch, torch.nn.functional as F
    >>> z = torch.randn(8, requires_grad=True)
    >>> y = torch.tensor([0., 1., 1., 0., 1., 0., 0., 1.])
    >>> loss = F.binary_cross_entropy_with_logits(y, z)  # swapped
    >>> loss.backward()
    >>> read_swapped(z.detach(), z.grad, float(loss), y)["reduction"]
    'mean'
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trainwell.doctor.binary_floor import RANGE_TOL, VALUE_TOL, _weights
from trainwell.doctor.verdict import Verdict

FOUND = "binary cross-entropy with logits given (targets, outputs): its arguments are swapped"
FIX = ("swap them: torch's losses take (input, target), criterion(model(x), y); given the other way round the "
       "outputs are the target, every example labelled 1 gets the same push up whatever its score, those labelled 0 "
       "none, and the loss falls below 0 without the model learning")


def read_swapped(z: torch.Tensor, g: torch.Tensor | None, loss: float, y) -> dict | None:
    """``{'on': 'swapped_logits', 'reduction', 'elements'}`` when the outputs ``z``, their gradient ``g``, the loss's
    value ``loss`` and the targets ``y`` read as ``binary_cross_entropy_with_logits(y, z)``; None otherwise."""
    if g is None or not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.numel() != z.numel() or \
            z.shape != g.shape or z.numel() < 2 or not math.isfinite(loss):
        return None
    y = y.detach().reshape(z.shape).to(device=z.device, dtype=torch.float64)
    z, g = z.detach().double(), g.detach().double()
    if float(y.min()) < 0.0 or float(y.max()) > 1.0 or not bool(y.any()) or not bool(torch.isfinite(z).all()):
        return None
    terms = F.softplus(y) - y * z
    for reduction, a in _weights(z):
        if float((g + a * y).abs().max()) > RANGE_TOL * a:
            continue
        if abs(a * float(terms.sum()) - loss) <= VALUE_TOL * abs(loss) + 1e-7:
            return {"on": "swapped_logits", "reduction": reduction, "elements": z.numel()}
    return None


def swapped_verdict(seen: str) -> Verdict:
    """The ``loop: loss`` fail for BCE with logits given (targets, outputs), ``seen`` saying on which steps."""
    return Verdict("loop: loss", "fail", f"{FOUND} (dL/dz = -y / N whatever the outputs; {seen})",
                   "loss_fn(outputs, targets)", FIX)
