"""Cross-entropy against soft targets, read with the targets given to ``w.step(loss, y=y)``.

The gradient of ``-(t_i * log_softmax(z_i)).sum()`` at example i's logits is ``a_i (softmax(z_i) sum(t_i) - t_i)``
(``a_i``: the example's weight in the loss, 1/N for a mean). With one label per row the label is the gradient's
only negative entry and :mod:`~trainwell.doctor.loss_form` reads the form from the gradient alone; soft targets
(mixup's mixed labels, Zhang et al. 2018; smoothed labels; a teacher's probabilities) put weight on several
classes, so that reading fits only a row whose mix happens to be nearly one-hot. Given the targets, the form is
fitted directly: one weight per row, to a relative residual below 1e-3.

Example:
    >>> import torch, torch.nn.functional as F
    >>> z = torch.randn(8, 5, requires_grad=True)
    >>> t = torch.softmax(torch.randn(8, 5), 1)
    >>> F.cross_entropy(z, t).backward()
    >>> round(soft_cross_entropy(z.detach(), z.grad, t)["weight"], 6)
    1.0
"""

from __future__ import annotations

import torch

TOLERANCE = 1e-3


def soft_cross_entropy(z: torch.Tensor, g: torch.Tensor | None, y: torch.Tensor,
                       tolerance: float = TOLERANCE) -> dict | None:
    """``{"weight", "rows", "classes", "spread"}`` when the gradient ``g`` at the (N, C) logits ``z`` is
    cross-entropy's against the (N, C) targets ``y`` with a positive weight per row (``weight``: their sum,
    ``spread``: largest / smallest); None when ``y`` is not a batch of non-negative floating-point rows shaped like
    ``z`` with one row at least not one-hot, or the gradient does not fit."""
    if g is None or z.dim() != 2 or z.shape[1] < 2 or not y.is_floating_point() or tuple(y.shape) != tuple(z.shape):
        return None
    t = y.detach().to(device=g.device, dtype=torch.float64)
    if bool((t < 0).any()) or not bool(torch.isfinite(t).all()) or bool(((t == 0) | (t == 1)).all()):
        return None
    gr = g.detach().double()
    live = gr.ne(0).any(1)
    if not bool(live.any()):
        return None
    p, t, gr = torch.softmax(z.detach().double()[live], 1), t[live], gr[live]
    d = p * t.sum(1, keepdim=True) - t
    a = (gr * d).sum(1) / (d * d).sum(1).clamp_min(1e-300)
    resid = float((gr - a[:, None] * d).norm() / gr.norm().clamp_min(1e-300))
    if resid > tolerance or not bool((a > 0).all()):
        return None
    return {"weight": float(a.sum()), "rows": int(live.sum()), "classes": z.shape[1],
            "spread": float(a.max() / a.min())}


def mark_soft_step(step: dict, reading: dict | None) -> None:
    """Record on an observed step's record (:func:`~trainwell.doctor.step_record.read_step`) that its loss is
    cross-entropy against the soft targets given with it: its form and weight where the gradient alone could not
    say, a note where it read a one-label cross-entropy (a nearly one-hot mix). A step with several outputs or
    backward passes is left as read."""
    if reading is None or step.get("forwards") != 1 or step.get("backwards") != 1 or \
            step.get("form") not in (None, "cross_entropy"):
        return
    if step["form"] is None:
        step.update(form="cross_entropy", loss_weight=reading["weight"], rows=reading["rows"],
                    classes=reading["classes"], spread=reading["spread"], bounded=None)
    step["soft_targets"] = True
