"""A policy gradient read from the gradient its loss sends to the policy's logits.

REINFORCE's loss ``-log p(a_i) x A_i`` on the model's own samples a_i (Williams 1992) sends row i the gradient
``A_i (softmax(z_i) - e_{a_i})``: the softmax form of cross-entropy (:mod:`~trainwell.doctor.loss_form`) with
per-example weights A_i (returns or advantages) of both signs. A row with A_i < 0 has its action at the gradient's
largest entry, not its smallest. Actor-critic losses add an entropy bonus ``-beta mean_i H(p_i)`` (Mnih et al.
2016), whose gradient on row i is ``b p_i (log p_i + H_i)`` with one ``b = beta / N`` for every row; it is fitted
with the weights, so a bonus does not hide the form.

With two classes every zero-sum gradient fits the softmax form with some label and weight per row, of either sign
(:func:`two_class_signs`): a row is read as positive weight w on the label whose gradient entry is negative, or as
negative weight on the other label. The loss's value then tells them apart: all rows positive gives the largest
value, all negative the smallest; a policy gradient with centred advantages (a baseline or a critic) lies between
and below zero on some steps, where no supervised loss goes.

The sign of the weights cannot be read: ``+log p(a) x A`` (the sign flipped, which lowers the reward) is the
healthy loss for the reward ``-r``, and nothing in the gradient says which reward the user meant.
"""

from __future__ import annotations

import torch


def _projected(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Each row of ``x`` minus its projection on the same row of ``v``."""
    return x - (x * v).sum(1, keepdim=True) / (v * v).sum(1, keepdim=True).clamp_min(1e-30) * v


def fit_signed(z: torch.Tensor, g: torch.Tensor) -> tuple[float, torch.Tensor, float]:
    """(relative residual, per-row weights a, entropy coefficient b) of
    ``g ~ a_i (softmax(z_i) - e_{y_i}) + b p_i (log p_i + H_i)`` over rows of (N, C), each row's action y_i at the
    gradient's smallest or largest entry (the better fit), b shared by every row (0 without an entropy bonus)."""
    p = torch.softmax(z, 1)
    u = p * (p.clamp_min(1e-30).log() - (p * p.clamp_min(1e-30).log()).sum(1, keepdim=True))
    b = 0.0
    for _ in range(3):  # the actions chosen given b, then b given the actions
        rest = g - b * u
        masks = [torch.zeros_like(p).scatter_(1, idx, 1.0) for idx in (rest.argmin(1, keepdim=True),
                                                                       rest.argmax(1, keepdim=True))]
        errs = [_projected(p - m, rest).norm(dim=1) for m in masks]
        mask = torch.where((errs[1] < errs[0])[:, None], masks[1], masks[0])
        v = p - mask
        pg, pu = _projected(v, g), _projected(v, u)
        b = float((pg * pu).sum() / (pu * pu).sum().clamp_min(1e-30))
    rest = g - b * u
    a = (rest * v).sum(1) / (v * v).sum(1).clamp_min(1e-30)
    resid = float((rest - a[:, None] * v).norm() / g.norm().clamp_min(1e-30))
    return resid, a, b


def _bonus_share(z: torch.Tensor, b: float) -> float:
    """The size of the entropy bonus's fitted gradient, b ||p (log p + H)||: below the fit's tolerance it is noise."""
    p = torch.softmax(z, 1)
    logp = p.clamp_min(1e-30).log()
    return abs(b) * float((p * (logp - (p * logp).sum(1, keepdim=True))).norm())


def signed_weights(z: torch.Tensor, g: torch.Tensor, tol: float) -> dict | None:
    """The policy-gradient reading of (N, C) logits and their gradient: the form fits (:func:`fit_signed`) and the
    weights are of both signs, the negative ones at least a tenth of the total size. None otherwise."""
    resid, a, b = fit_signed(z, g)
    if resid >= tol or not bool((a > 0).any()) or float(-a[a < 0].sum()) < 0.1 * float(a.abs().sum()):
        return None
    bonus = b > 0 and _bonus_share(z, b) >= tol * float(g.norm())
    return {"form": "signed_weights", "weight": float(a.sum()), "rows": len(z), "classes": z.shape[1],
            "bounded": None, "entropy_bonus": b * len(z) if bonus else None}


def two_class_signs(z: torch.Tensor, g: torch.Tensor, loss: float, scale: float = 1.0) -> bool:
    """Whether (N, 2) logits ``z``, the zero-sum gradient ``g`` the loss sent them (``scale`` times the loss's own,
    AMP's GradScaler factor) and the loss's value read as per-example weights of both signs (see the module's
    docstring): the value is negative, so not every weight is positive (cross-entropy, focal, hinge and distillation
    losses are never below 0), and above the value with every weight negative (a cross-entropy missing its minus
    sign), by 1% of the range between the two."""
    p = torch.softmax(z.detach().double(), 1)
    g = g.detach().double() / scale
    label = g.argmin(1, keepdim=True)  # each row's label under a positive weight: its negative gradient entry
    pa = p.gather(1, label).squeeze(1)
    size = g.gather(1, label).squeeze(1).abs()
    every_positive = float((size / (1 - pa).clamp_min(1e-30) * -pa.clamp_min(1e-30).log()).sum())
    every_negative = float((-size / pa.clamp_min(1e-30) * -(1 - pa).clamp_min(1e-30).log()).sum())
    margin = 0.01 * (every_positive - every_negative)
    return margin > 0 and every_negative + margin < loss < -margin
