"""A square root taken at exactly 0 in the loss: a finite loss whose gradient is NaN.

The derivative of sqrt(s) is 1 / (2 sqrt(s)), infinite at s = 0, and autograd multiplies it by the gradient that
reaches it: ``inf * 0 = NaN``. A Euclidean distance written out, ``((z[:, None] - z[None]) ** 2).sum(-1).sqrt()``,
is 0 on its diagonal (each point's distance to itself, and any two equal embeddings), so a contrastive or triplet
loss on it is finite while every gradient is NaN, the first step writes NaN into the weights, and from the next step
on the loss is NaN too: the loss curve reads as a learning rate too high from step 1. ``torch.cdist``,
``F.pairwise_distance`` and ``torch.linalg.vector_norm`` give 0, not NaN, at 0; so does an epsilon inside,
``(s + 1e-12).sqrt()``; or the squared distance needs no root.

Read at the first watched step: the loss is finite, some parameter's gradient is not, and the loss's graph takes a
square root (``sqrt``, or a power between 0 and 1) of something nothing keeps from 0 (an added epsilon, a clamp).
"""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor.registration import graph_nodes
from trainwell.doctor.verdict import Verdict

NAME = "loop: square root at 0"
_GUARDS = ("AddBackward", "ClampBackward", "ClampMinBackward", "MaximumBackward", "SoftplusBackward")


def unguarded_root(loss) -> str | None:
    """``"sqrt"`` or ``"** p"`` for the first root in ``loss``'s graph whose input nothing keeps from 0, or
    None."""
    fn = getattr(loss, "grad_fn", None)
    if not isinstance(loss, torch.Tensor) or fn is None:
        return None
    for node in graph_nodes([fn], limit=20_000):
        name = type(node).__name__
        if name.startswith("SqrtBackward"):
            form = "sqrt"
        elif name.startswith("PowBackward0") and 0 < float(getattr(node, "_saved_exponent", 2.0)) < 1:
            form = f"** {float(node._saved_exponent):g}"
        else:
            continue
        below = node.next_functions[0][0] if node.next_functions else None
        if below is not None and not type(below).__name__.startswith(_GUARDS):
            return form
    return None


def nan_gradient_through_root(loss, model: nn.Module) -> str | None:
    """The unguarded root of a finite ``loss`` whose backward left a non-finite gradient on one of ``model``'s
    parameters (read once, at the first step), or None."""
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not bool(torch.isfinite(loss.detach())):
        return None
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads or all(bool(torch.isfinite(g.coalesce().values() if g.is_sparse else g).all()) for g in grads):
        return None
    return unguarded_root(loss)


def zero_root_verdict(form: str | None) -> Verdict | None:
    """A fail naming the root where the first step's finite loss gave a NaN gradient."""
    if form is None:
        return None
    return Verdict(NAME, "fail", f"the first step's loss was finite but its gradient was not; the loss takes a "
                   f"square root ({form}) of something that can be exactly 0, whose derivative there is infinite "
                   "(inf * 0 = NaN): a distance of a point to itself, the diagonal of a pairwise distance matrix",
                   "a finite gradient",
                   "not the learning rate: keep the root away from 0, (s + 1e-12).sqrt(), or use torch.cdist / "
                   "F.pairwise_distance (0 gradient at 0), or the squared distance")


def defer_to_zero_root(verdicts: list[Verdict]) -> list[Verdict]:
    """The non-finite monitors and a non-finite validation loss, which follow from a fired square-root verdict,
    read as 'info' naming it."""
    if not any(v.check == NAME and v.status == "fail" for v in verdicts):
        return verdicts
    return [Verdict(v.check, "info", f"{v.value} (explained by '{NAME}')", v.expected,
                    "the first step's gradient was NaN at a square root of 0: keep the root away from 0 first")
            if v.status == "fail" and (v.check.startswith("monitor: non-finite") or
                                       (v.check == "overfitting" and "not finite" in str(v.value))) else v
            for v in verdicts]
