"""Binary cross-entropy with logits given targets outside [0, 1]: a class index passed as a float
(``F.binary_cross_entropy_with_logits(out.squeeze(1), y.float())`` on labels 0..3), counts, or unscaled ratings.
BCE(z, y) = softplus(z) - y z has a minimum only for y in [0, 1]: for y > 1 it falls without end as z grows (and
for y < 0 as z falls), so training drives those logits to infinity and the loss to -inf, then NaN; torch checks
nothing.

Read on the watched loop's observed steps from the outputs' gradient and the ``y=`` given to ``w.step``: the loss
is binary cross-entropy with logits against those targets when its gradient is (sigmoid(z) - y) / n (a mean over
the n elements) or sigmoid(z) - y (a sum); the targets are then checked against [0, 1].
"""

from __future__ import annotations

import torch

from trainwell.doctor.verdict import Verdict

NAME = "loop: binary targets"
FIX = ("binary cross-entropy needs targets in [0, 1]: class indices 0..C-1 want CrossEntropyLoss on C outputs "
       "(or one-hot rows under BCE); scale other targets into [0, 1], or use a regression loss")


def targets_outside(scored: tuple | None, y) -> tuple[float, float] | None:
    """(min, max) of the targets ``y`` when the observed step's (outputs, gradient) ``scored`` is binary
    cross-entropy with logits against them (mean or sum) and they leave [0, 1]; else None."""
    if scored is None or not isinstance(y, torch.Tensor) or not y.is_floating_point():
        return None
    z, g = scored
    if g is None or z.shape != g.shape or y.numel() != z.numel() or z.numel() < 2:
        return None
    z, g, y = z.detach().double(), g.detach().double(), y.detach().double().reshape(z.shape).to(z.device)
    if not bool(torch.isfinite(z).all() and torch.isfinite(g).all() and torch.isfinite(y).all()):
        return None
    low, high = float(y.min()), float(y.max())
    if -1e-6 <= low and high <= 1 + 1e-6:
        return None
    tol = 1e-4 * max(1.0, abs(low), abs(high))
    if not any(float((torch.sigmoid(z) - g * n - y).abs().max()) <= tol for n in (z.numel(), 1)):
        return None
    return low, high


def binary_targets_verdict(reads: list) -> Verdict | None:
    """A fail when an observed step's BCE-with-logits targets left [0, 1] (``reads``: per observed step, the
    :func:`targets_outside` reading); else None."""
    found = [r for r in reads if r is not None]
    if not found:
        return None
    low, high = min(r[0] for r in found), max(r[1] for r in found)
    return Verdict(NAME, "fail", f"binary cross-entropy with logits against targets in [{low:g}, {high:g}] on "
                   f"{len(found)} of {len(reads)} observed steps: outside [0, 1] the loss has no minimum (it falls "
                   "without end as the logits grow, then turns NaN)", "targets in [0, 1]", FIX)


def defer_to_binary_targets(verdicts: list[Verdict]) -> list[Verdict]:
    """The non-finite monitors and a validation loss that is not finite beside a training loss that is not either
    follow from a loss with no minimum: they become 'info', naming the targets first."""
    found = next((v for v in verdicts if v.check == NAME and v.status == "fail"), None)
    if found is None:
        return verdicts
    return [Verdict(v.check, "info", f"{v.value} (explained by '{NAME}')", v.expected,
                    f"fix '{NAME}' first: the loss falls without end, the logits grow to Inf")
            if v.status in ("warn", "fail") and _follows(v) else v for v in verdicts]


def _follows(v: Verdict) -> bool:
    """A non-finite monitor's verdict, or the overfitting one for losses that are all non-finite."""
    return v.check.startswith("monitor: non-finite") or \
        v.check == "overfitting" and "nor is the training loss" in str(v.value)
