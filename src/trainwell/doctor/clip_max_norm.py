"""``clip_grad_norm_`` handed ``max_norm`` of 0 or below: a configuration's 0 (or -1) meaning "no clipping" passed
on to torch, which has no such value. torch multiplies every gradient by ``max_norm / (total_norm + 1e-6)``,
clamped to at most 1: at ``max_norm=0`` every gradient becomes 0 and nothing trains; below 0 every gradient is
reversed and each step climbs the loss. Hugging Face's ``Trainer`` skips the call when its ``max_grad_norm`` is 0
or None; a loop ported from such a configuration must skip it too.

Read from the clipping calls :class:`~trainwell.doctor.clip_order.ClipCalls` saw on the watched model's
parameters: every call's ``max_norm`` 0 or below while the gradients it found were not all 0.
"""

from __future__ import annotations

from trainwell.doctor.clip_order import ClipCalls
from trainwell.doctor.verdict import Verdict

NAME = "loop: clipping max_norm"


def nonpositive_max_norm(clips: ClipCalls) -> Verdict | None:
    """A fail when every ``clip_grad_norm_`` call read had ``max_norm <= 0`` and found a gradient; None otherwise."""
    if not clips.max_norms or max(clips.max_norms) > 0 or not any(float(n) > 0 for n in clips.norms):
        return None
    limit = max(clips.max_norms)
    done = "sets every gradient to 0: no parameter changes" if limit == 0 else \
        "reverses every gradient: each step climbs the loss"
    return Verdict(NAME, "fail", f"clip_grad_norm_(max_norm={limit:g}), in all {len(clips.max_norms)} "
                   f"calls read, {done}", "max_norm > 0, or no clipping call",
                   f"torch has no 'no clipping' value: max_norm={limit:g} scales the gradients by "
                   f"{limit:g} / their norm. Skip the call when clipping is off (if max_norm > 0: "
                   "clip_grad_norm_(...)), or give a positive max_norm (1.0 is common)")
