"""Cross-entropy over runs of C consecutive values of ``(B, C, H, W)`` or ``(B, C, T)`` outputs: ``out.reshape(-1, C)``
without moving the class axis last first. Each "row" the loss sees then mixes positions and classes, so the model
cannot fit even a few examples, and nothing raises. Read from the gradient the loss sends to the outputs
(:mod:`~trainwell.doctor.loss_form`'s 'scrambled_classes'): by ``doctor.check`` on the batch, by ``doctor.watch``
(``loop: loss``) on the observed steps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from trainwell.doctor import outputs as O
from trainwell.doctor.loss_form import read_form
from trainwell.doctor.verdict import Verdict

NAME = "loss over the class axis"
_LARGEST = 2**24  # outputs read at most (the form is fitted in float64 over several layouts)


def scrambled_text(classes: int) -> tuple[str, str, str]:
    """(value, expected, advice) of the verdict on a softmax over runs of ``classes`` consecutive values."""
    c = classes
    return (f"the loss's softmax runs over groups of {c} consecutive values of the (B, {c}, ...) outputs, not over "
            f"their class axis (dim 1)", "cross-entropy over dim 1",
            f"reshape(-1, {c}) / view(-1, {c}) on (B, C, H, W) or (B, C, T) outputs mixes positions and classes: "
            f"move the class axis last first (out.movedim(1, -1).reshape(-1, {c})), or give cross_entropy the "
            "(B, C, ...) outputs and (B, ...) targets as they are")


def scrambled_classes(loss_fn: Callable, out, y) -> Verdict | None:
    """Pre-flight: a fail when the gradient of ``loss_fn(out, y)`` at the model's class scores (``out`` computed
    with gradients) has cross-entropy's form only over runs of C consecutive values; None otherwise."""
    z = O.logits(out)
    if z is None or not z.is_floating_point() or not z.requires_grad or z.dim() < 3 or \
            z.shape[1] == z.shape[-1] or z.numel() > _LARGEST:
        return None
    loss = loss_fn(out, y)
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        return None
    (g,) = torch.autograd.grad(loss.sum(), z, allow_unused=True)
    if g is None or read_form(z.detach(), g)["form"] != "scrambled_classes":
        return None
    return Verdict(NAME, "fail", *scrambled_text(z.shape[1]))
