"""``F.kl_div`` given probabilities instead of log-probabilities, read without the targets: from the loss's value
given to ``w.step(loss)`` and the gradient it sends to the model's logits.

``F.kl_div(p, t)`` computes sum t (log t - p). Given p = softmax(z / T) where log-probabilities belong, its value per
row is -H(t) - <t, p>: never above 0, where a KL divergence never goes below. Its gradient on the logits z is
g = -(w / T) p * (t - <t, p>), w the reduction's weight (1/B for 'batchmean', 1/(B C) for 'mean', 1 for 'sum', times
T^2 for the distillation scaling of Hinton, Vinyals & Dean 2015). So the targets come back from g up to one constant
per row, which their sum of 1 fixes: t = -g T / (w p) + c. A reading holds when those targets are rows of
probabilities and the loss's value equals w sum(t log t - <t, p>) (to 1e-4): the value rules out another loss whose
gradient sums to 0 over the classes (a policy gradient's), and a KL divergence on ``log_softmax`` (its gradient is
w (p - t) / T) does not fit it.

Example:
    >>> import torch, torch.nn.functional as F
    >>> z = torch.randn(16, 5, dtype=torch.float64, requires_grad=True)
    >>> t = torch.softmax(torch.randn(16, 5, dtype=torch.float64), 1)
    >>> loss = F.kl_div(torch.softmax(z, 1), t, reduction="batchmean")
    >>> loss.backward()
    >>> read = kl_on_probabilities(z.detach(), z.grad, float(loss.detach()))
    >>> read["form"], read["weight"]
    ('kl_on_softmax', 1.0)
"""

from __future__ import annotations

import math

import torch

#: distillation temperatures tried (the usual 1 to 20)
TEMPERATURES = (1.0, 2.0, 3.0, 4.0, 5.0, 8.0, 10.0, 20.0)
#: recovered targets may leave [0, 1] by this much, the loss's value miss by this share
RANGE_TOL, VALUE_TOL = 1e-4, 1e-4


def kl_on_probabilities(z: torch.Tensor, g: torch.Tensor | None, loss: float) -> dict | None:
    """The reading of ``F.kl_div(softmax(z / T), t)`` from (B, C) logits ``z``, their gradient ``g`` and the loss's
    value ``loss`` (below 0), as :func:`~trainwell.doctor.distribution_targets.read_against` words it (``form``
    'kl_on_softmax', ``weight`` the per-row weights' sum, ``rows``, ``classes``, ``temperature``,
    ``probabilities`` False) with ``targets_read`` True; None when it does not fit."""
    if g is None or z.dim() != 2 or z.shape[1] < 2 or len(z) < 2 or g.shape != z.shape or \
            not z.is_floating_point() or not math.isfinite(loss) or loss >= 0:
        return None
    zd, gd = z.detach().double(), g.detach().double()
    if not bool(torch.isfinite(gd).all()) or not bool(torch.isfinite(zd).all()) or float(gd.abs().sum()) == 0.0 or \
            float(gd.sum(1).abs().max()) > 1e-4 * float(gd.abs().max()):
        return None
    rows, classes = zd.shape
    for temperature in TEMPERATURES:
        p = torch.softmax(zd / temperature, 1)
        if float(p.min()) < 1e-12:  # the targets are read through 1 / p
            continue
        for weight in _weights(rows, classes, temperature):
            u = -gd * temperature / (weight * p)
            t = u + (1 - u.sum(1, keepdim=True)) / classes
            if float(t.min()) < -RANGE_TOL or float(t.max()) > 1 + RANGE_TOL:
                continue
            t = t.clamp(0.0, 1.0)
            value = weight * float((torch.xlogy(t, t) - t * p).sum())
            if abs(value - loss) <= VALUE_TOL * abs(loss) + 1e-7:
                return {"form": "kl_on_softmax", "weight": weight * rows, "rows": rows, "classes": classes,
                        "temperature": temperature, "probabilities": False, "targets_read": True}
    return None


def _weights(rows: int, classes: int, temperature: float) -> list[float]:
    """The reductions' weights: 'batchmean', 'mean', 'sum', each also times T^2 (the distillation scaling)."""
    out = [1.0 / rows, 1.0 / (rows * classes), 1.0]
    return out + [w * temperature**2 for w in out] if temperature != 1.0 else out
