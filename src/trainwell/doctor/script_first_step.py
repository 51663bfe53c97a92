"""For ``trainwell watch``: the script's first optimizer step, read before any watch begins.

``trainwell watch`` knows the model only once the loop's first step has ended, so its watch observes the steps
from the second on. A loop that breaks on its first update (a learning rate far too high, a static loss scale
never divided out, a NaN gradient from a square root at 0) has NaN weights by then, and what the explicit
``doctor.watch`` reads on the first step (the first loss against ln C, the scale ``.grad`` still holds, a finite
loss with a non-finite gradient) is gone. :class:`FirstStep` reads it from the script's own calls: the loss its
first ``backward()`` started from, the norm of the gradients that backward gave the graph's leaves, and their norm
again when the first ``optimizer.step()`` begins. The watch that begins on that optimizer is handed the reading
(:meth:`~trainwell.doctor.watch.Watch.began_after`).

A static loss scale written by hand, ``(loss * 1024).backward()``, is read as the loss times a constant
(:func:`unscaled`): the watch is handed the loss, as the explicit ``w.step(loss)`` is, and the constant is the
scale :func:`~trainwell.doctor.loss_scaling.undivided_scale` reads.
"""

from __future__ import annotations

import math

import torch

from trainwell.doctor.loss_scaling import power_of_two, undivided_scale
from trainwell.doctor.positive_init import positive_weights
from trainwell.doctor.registration import graph_leaves
from trainwell.doctor.trained_symmetry import constant_weights
from trainwell.doctor.verdict import Verdict
from trainwell.doctor.wide_init import wide_weights
from trainwell.doctor.zero_sqrt import unguarded_root


def unscaled(tensor: torch.Tensor) -> tuple[torch.Tensor, float | None]:
    """``(loss, W)`` when ``tensor`` is ``loss * W`` for a constant W that is a power of two of 8 or more (a static
    loss scale written by hand), ``loss`` made as ``tensor / W`` (on ``tensor``'s graph); else ``(tensor, None)``.
    Read before ``backward()`` frees the saved factor."""
    fn = tensor.grad_fn
    if type(fn).__name__ != "MulBackward0":
        return tensor, None
    try:
        factor, own = fn._saved_other, fn._saved_self
    except RuntimeError:  # freed: a graph backed through before
        return tensor, None
    # a constant: one number without a gradient, the loss's own value not saved (no gradient flows to the number)
    if not isinstance(factor, torch.Tensor) or factor.numel() != 1 or factor.requires_grad or own is not None:
        return tensor, None
    scale = float(factor)
    if not power_of_two(scale, 3):
        return tensor, None
    return tensor / scale, scale


def _norm(leaves: list[torch.Tensor]) -> tuple[float, bool]:
    """The norm of the leaves' ``.grad`` and whether every one is finite (each tensor's norm taken where it lies,
    in float32: no copy of the gradients)."""
    grads = [t.grad.coalesce().values() if t.grad.is_sparse else t.grad for t in leaves if t.grad is not None]
    norms = [torch.linalg.vector_norm(g.detach(), dtype=torch.float32) for g in grads if g.numel()]
    if not norms:
        return 0.0, True
    total = math.fsum(float(n) ** 2 for n in torch.stack([n.cpu() for n in norms]).tolist())
    return (math.sqrt(total), True) if math.isfinite(total) else (math.inf, False)


class FirstStep:
    """The script's first optimizer step: its loss (``value``, unscaled), the static loss ``scale`` it was
    multiplied by, the gradients' norm after ``backward()`` (``norm``) and the share of it ``.grad`` still held at
    ``optimizer.step()`` (``held``: 1 when never divided, 1/W when divided out), and the unguarded square ``root``
    that made its finite loss's gradient non-finite (:mod:`~trainwell.doctor.zero_sqrt`)."""

    def __init__(self):
        self.loss: torch.Tensor | None = None
        self.value: float | None = None
        self.scale: float | None = None
        self.backwards = 0
        self.norm: float | None = None
        self.finite = True  # the gradients backward() gave
        self.held: float | None = None
        self.root: str | None = None
        self.optimizer = None  # the optimizer whose step it was
        self.positive: list | None = None  # weights initialized all positive (positive_init.positive_weights)
        self.wide: list | None = None  # weights drawn too wide for their fan-in (wide_init.wide_weights)
        self.constant: list | None = None  # weights initialized to one value (trained_symmetry.constant_weights)
        self.done = False

    def backed(self, loss: torch.Tensor, scale: float | None) -> None:
        """A ``backward()`` from ``loss`` (times ``scale``) before the first step."""
        if self.done:
            return
        self.backwards += 1
        self.loss, self.scale = loss, scale
        self.value = float(loss.detach())

    def backward_done(self) -> None:
        """That ``backward()`` returned: the gradients it gave the loss's graph's leaves."""
        if self.done or self.loss is None:
            return
        self.norm, self.finite = _norm(graph_leaves(self.loss))

    def stepping(self, optimizer) -> None:
        """The first ``optimizer.step()`` begins: what ``.grad`` holds of the backward's gradients; a finite loss
        with a non-finite gradient, and the root in its graph."""
        if self.done:
            return
        self.done, self.optimizer = True, optimizer
        if self.loss is None or self.norm is None:
            return
        leaves = graph_leaves(self.loss)
        self.positive = positive_weights((None, t) for t in leaves)  # before the step updates them
        self.wide = wide_weights((None, t) for t in leaves)
        self.constant = constant_weights((None, t) for t in leaves)
        now, _ = _norm(leaves)
        self.held = now / self.norm if self.norm > 0 and math.isfinite(self.norm) else None
        if not self.finite and self.value is not None and math.isfinite(self.value):
            self.root = unguarded_root(self.loss)
        self.loss = None  # the graph is not kept

    def scale_verdict(self, adaptive: bool) -> Verdict | None:
        """The ``loop: loss`` verdict on a static loss scale that ``.grad`` still held at the first step (as
        :func:`~trainwell.doctor.loss_scaling.undivided_scale` reads it on an observed step), or None."""
        if self.scale is None or self.held is None or self.backwards != 1:
            return None
        step = {"loss_weight": self.scale, "scale": self.held, "backwards": 1, "rows": 0, "resid": 0.0,
                "incoming_norm": self.norm}
        verdict = undivided_scale("loop: loss", [step], adaptive)
        if verdict is None:
            return None
        verdict.value = verdict.value.replace("(1 of 1 observed steps read so)", "(read on the first step)") \
            .replace("on 1 of 1 observed steps", "on the first step")
        return verdict


__all__ = ["FirstStep", "unscaled"]
