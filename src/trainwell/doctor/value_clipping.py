"""``torch.nn.utils.clip_grad_value_`` read at ``optimizer.step()``: ``.grad`` is the backward pass's gradient
clamped elementwise to [-c, c]. A c below the typical gradient element clamps most of them on every step: under
SGD each clamped element moves by lr * c whatever its gradient, a sign-like update at a far smaller rate, and the
direction is no longer the gradient's."""

from __future__ import annotations

from trainwell.doctor.loop_step_hooks import ADAPTIVE
from trainwell.doctor.verdict import Verdict

#: the share of the non-zero gradient elements clamped on a step above which clipping is not of rare spikes
MOST = 0.5


def value_clipping(name: str, probe, later: list[dict]) -> Verdict | None:
    """A warn (``info`` under Adam and other optimizers that divide out each element's scale) when ``.grad`` was
    clamped by value on 90% of the observed steps or more, with most of its elements clamped on the median one;
    None otherwise (clipping of rare spikes passes)."""
    clipped = [s for s in later if s.get("value_clip") is not None]
    if len(later) < 4 or len(clipped) < 0.9 * len(later):
        return None
    shares = sorted(s["value_clip"][1] for s in clipped)
    share = shares[len(shares) // 2]
    if share < MOST:
        return None
    cap = sorted(s["value_clip"][0] for s in clipped)[len(clipped) // 2]
    value = (f"clipped by value on {len(clipped)} of {len(later)} observed steps: {share:.0%} of the gradient's "
             f"elements held at +-{cap:.3g} on the median step")
    if isinstance(probe.optimizer, ADAPTIVE):
        return Verdict(name, "info", value, "-", f"{type(probe.optimizer).__name__} divides each element by its "
                       "running scale, so the clamp mostly keeps the gradient's signs; raise clip_value above the "
                       "usual gradient element (or clip by norm with clip_grad_norm_) if only spikes should be "
                       "clipped")
    return Verdict(name, "warn", value, "clipping only on rare spikes",
                   "clip_value is below the typical gradient element: each clamped weight moves by lr * clip_value "
                   "whatever its gradient (a far smaller rate, and not the gradient's direction); raise clip_value "
                   "above the usual element (e.g. 1.0), or clip the norm with clip_grad_norm_")
