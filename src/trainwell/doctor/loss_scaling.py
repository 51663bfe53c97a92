"""Loss scaling (AMP's ``GradScaler``, or a static scale written by hand) as an observed step saw it: the scale the
``GradScaler`` stepping the optimizer holds, and clipping that ran on the scaled gradients.

``backward()`` on ``scaler.scale(loss)`` gives gradients ``scale`` times the loss's (2^16 at first); the scaler
divides them out in ``scaler.unscale_(optimizer)`` (called by ``scaler.step`` if the loop did not). Gradient
clipping must come after that division: ``clip_grad_norm_(params, max_norm)`` before it clips the scaled
gradients to ``max_norm``, and the division then leaves a norm of ``max_norm / scale`` on every step (1.5e-5 for
``max_norm=1``): the model barely moves. PyTorch's AMP recipe ("Working with unscaled gradients") calls
``scaler.unscale_(optimizer)`` first. The signal: the norm at ``optimizer.step()`` is pinned on every observed step
while ``backward()`` gives more, and that norm times the step's scale (a power of two) is a round ``max_norm``
(two significant digits: 1, 0.5, 5, 0.25) that the pinned norm itself is not.

A static scale written by hand, ``(loss * 1024).backward()``, shows as the loss's weight read from its outputs'
gradient (a power of two); ``.grad`` at the step then says whether it was divided out (:func:`static_scale`):
clipping only shrinks the gradients, so a factor at most 1/scale is the division (then maybe clipping), 1 is no
division, and between them the gradients were clipped while still scaled. A scale of 2^16, GradScaler's starting
one, still in ``.grad`` is a GradScaler that scaled the loss while ``optimizer.step()`` was called in place of
``scaler.step(optimizer)``: the advice says so.
"""

from __future__ import annotations

import math
import sys

import torch

from trainwell.doctor.verdict import Verdict

#: the scale a torch.amp.GradScaler starts at (init_scale=2**16), and keeps while update() is never called
GRAD_SCALER_START = 2.0**16
#: stack frames searched above the optimizer's step hook for the GradScaler calling ``optimizer.step()``
_FRAMES = 16
#: the relative precision of a clipped norm (float32 norms and the clipping factor): max_norm x (1 +- this)
_ROUND_TOL = 1e-4


def _scaler_methods() -> set:
    """The code objects of the methods of ``torch.amp.GradScaler`` and of every subclass of it defined so far."""
    codes, classes = set(), [torch.amp.GradScaler]
    while classes:
        cls = classes.pop()
        classes += cls.__subclasses__()
        codes |= {f.__code__ for f in vars(cls).values() if hasattr(f, "__code__")}
    return codes


def stepping_scaler_scale() -> float | None:
    """The scale of the enabled ``torch.amp.GradScaler`` whose ``step()`` is running ``optimizer.step()`` (read in
    the optimizer's step hook: the scaler is ``self`` in a frame above it), or None when no scaler steps it.

    Only a scaler method's frame has its locals read: reading a frame's ``f_locals`` (before Python 3.13) leaves a
    snapshot of its variables on the frame, which would keep the loop's objects alive (its previous loss tensors
    and batches) until the frame's locals are read again."""
    frame = sys._getframe(1)
    methods = _scaler_methods()
    for _ in range(_FRAMES):
        if frame is None:
            return None
        if frame.f_code not in methods:
            frame = frame.f_back
            continue
        owner = frame.f_locals.get("self")
        if isinstance(owner, torch.amp.GradScaler):
            return float(owner.get_scale()) if owner.is_enabled() else None
        frame = frame.f_back
    return None


def power_of_two(x: float, least: int = 1) -> bool:
    """Whether ``x`` is 2^k for a whole k >= ``least`` (to 1%: a loss weight read from low-precision outputs)."""
    if not (x > 0 and math.isfinite(x)):
        return False
    k = math.log2(x)
    return k >= least - 0.01 and abs(k - round(k)) < 0.01


def round_number(x: float) -> bool:
    """Whether ``x`` has at most two significant digits (1, 0.5, 5, 0.25, 10), as a typed ``max_norm`` does."""
    if not (x > 0 and math.isfinite(x)):
        return False
    mantissa = x / 10 ** (math.floor(math.log10(x)) - 1)  # in [10, 100)
    return abs(mantissa - round(mantissa)) <= _ROUND_TOL * mantissa


def _step_scale(step: dict) -> tuple[float, bool] | None:
    """(the loss scale the step's backward() ran under, whether a GradScaler holds it): the stepping scaler's, else
    the loss's weight read from the outputs' gradient when it is a power of two (a scale of 8 or more)."""
    if step.get("amp_scale"):
        return step["amp_scale"], True
    weight = step.get("loss_weight")
    if weight is not None and step["backwards"] == 1 and power_of_two(weight, 3):
        return float(2 ** round(math.log2(weight))), False
    return None


def static_scale(step: dict) -> tuple[float, str] | None:
    """(W, what ``.grad`` holds) for a hand-written static loss scale W, ``(loss * W).backward()`` with no
    GradScaler: the loss's weight read from its outputs' gradient, a power of two of 8 or more that is not the
    batch's size (a sum), on one backward() pass, while ``.grad`` at the step is what backward() gave times one
    factor c. Clipping only shrinks, so c <= 1/W is 'divided' (the scale divided out, then maybe clipped: the
    update is the unscaled loss's either way); c = 1 is 'kept' (never divided out); 1/W < c < 1 is 'clipped'
    (clipped while still scaled: the update's norm is max_norm, above the unscaled gradient's). None otherwise."""
    weight, c = step.get("loss_weight"), step.get("scale")
    rows = max(step.get("rows") or 0, 1)
    if step.get("amp_scale") or weight is None or step["backwards"] != 1 or not power_of_two(weight, 3) or \
            abs(weight - rows) <= 0.02 * rows or c is None or not (c > 0 and math.isfinite(c)) or \
            step["resid"] >= 1e-3:
        return None
    scale = float(2 ** round(math.log2(weight)))
    if c * scale <= 1 + 1e-3:
        return scale, "divided"
    if abs(c - 1) <= 1e-3:
        return scale, "kept"
    return (scale, "clipped") if c < 1 else None


def undivided_scale(name: str, steps: list[dict], adaptive: bool) -> Verdict | None:
    """A verdict when the loss was multiplied by a static scale that ``.grad`` still holds at the step
    (:func:`static_scale` 'kept' or 'clipped') on the first observed step of the form read (a run the scale made
    diverge saturates its outputs, whose weights then read otherwise, and clips its growing gradients below 1/W,
    which reads as 'divided'): a fail under SGD (every update is scale times too large), a warning under an
    optimizer that divides out the gradient's scale (Adam) or when clipping pins the updates. None otherwise."""
    first = static_scale(steps[0]) if steps else None
    if first is None or first[1] == "divided":
        return None
    scale = first[0]
    # the steps that read the first one's scale (a run the scale made diverge saturates its outputs, whose weights
    # then read otherwise); one clipped below 1/W reads as 'divided': where others read 'clipped' (the scale still in
    # .grad), it is clipping that grew with the gradient, not the scale divided out
    readings = [(s, static_scale(s)) for s in steps]
    read = [r for _, r in readings if r is not None and r[0] == scale]
    if any(r[1] == "divided" for r in read) and not any(r[1] == "clipped" for r in read):
        return None
    clipped = sum(r[1] == "clipped" for r in read)
    norms = sorted(s["incoming_norm"] / scale for s, r in readings if r is not None and r[1] == "clipped")
    fix = (f"divide the gradients by {scale:g} before clipping and optimizer.step() (for p in model.parameters(): "
           f"p.grad /= {scale:g}), or drop the scale: a static loss scale only guards float16 gradients, and "
           "torch.amp.GradScaler does it for you")
    what = "a static loss scale"
    if scale == GRAD_SCALER_START:  # a GradScaler that scales the loss but never steps keeps its starting scale
        what = "GradScaler's starting scale: scaler.step(optimizer) never called?"
        fix = (f"{scale:g} is torch.amp.GradScaler's starting scale: scaler.scale(loss).backward() followed by "
               "optimizer.step() itself? Step through the scaler, scaler.step(optimizer) (it divides the scale out "
               "and skips steps with inf/NaN gradients) then scaler.update(); clip after scaler.unscale_(optimizer)")
    if clipped:
        return Verdict(name, "warn", f"the loss was multiplied by {scale:g} before backward() ({what}) "
                       f"and .grad was clipped without dividing it out on {clipped} of {len(steps)} observed steps: "
                       f"every update's norm is pinned at max_norm, above the unscaled gradient's "
                       f"({norms[0]:.3g}..{norms[-1]:.3g}), which clipping after the division would leave as it is",
                       "the loss scale divided out of .grad", fix)
    status = "warn" if adaptive else "fail"
    effect = "its optimizer divides out the gradient's scale, so mostly eps and weight decay feel it" if adaptive \
        else f"every update is {scale:g}x too large"
    return Verdict(name, status, f"the loss was multiplied by {scale:g} before backward() ({what}) and "
                   f".grad still holds it at optimizer.step() ({len(read)} of {len(steps)} observed steps read so): "
                   f"{effect}",
                   "the loss scale divided out of .grad", fix)


def clipped_before_unscale(name: str, clipped: list[dict], observed: int) -> Verdict | None:
    """A fail when the observed steps' clipped gradients were clipped before the loss scale was divided out:
    each step's norm times its loss scale is one round ``max_norm`` that the norm itself is not; else None."""
    read = [(s, _step_scale(s)) for s in clipped]
    if not read or any(r is None for _, r in read):
        return None
    max_norms = [s["grad_norm"] * scale for s, (scale, _) in read]
    max_norm = sorted(max_norms)[len(max_norms) // 2]
    pinned = sorted(s["grad_norm"] for s in clipped)[len(clipped) // 2]
    if any(abs(m - max_norm) > _ROUND_TOL * max_norm for m in max_norms) or not round_number(max_norm) or \
            round_number(pinned):
        return None
    scale, by_scaler = read[len(read) // 2][1]
    raw = sorted(s["incoming_norm"] for s in clipped)
    shown = f"{max_norm:.2g}"
    if by_scaler:
        return Verdict(name, "fail", f"clip_grad_norm_ ran before scaler.unscale_(optimizer) on {len(clipped)} of "
                       f"{observed} observed steps: it clipped the scaled gradients (norm {raw[0]:.3g}..{raw[-1]:.3g}) "
                       f"to max_norm = {shown}, so the step's norm is max_norm / scale = {pinned:.3g} (scale "
                       f"{scale:g})", "scaler.unscale_(optimizer), then clip_grad_norm_",
                       "call scaler.unscale_(optimizer) first, then clip_grad_norm_, then scaler.step(optimizer) "
                       "and scaler.update(): as written every update is scale times too small and the model "
                       "barely learns")
    return Verdict(name, "fail", f"the gradients were clipped while multiplied by the loss scale {scale:g} (norm "
                   f"{raw[0]:.3g}..{raw[-1]:.3g}) on {len(clipped)} of {observed} observed steps, then divided by "
                   f"it: the step's norm is max_norm / scale = {shown} / {scale:g} = {pinned:.3g}",
                   "the loss scale divided out, then clipping", "divide the gradients by the loss scale before "
                   "clipping them (with torch.amp.GradScaler: scaler.unscale_(optimizer), then clip_grad_norm_): "
                   "as written every update is scale times too small and the model barely learns")


def defers_to_clipping(loss: Verdict, verdicts: list[Verdict]) -> bool:
    """A loss verdict that reads the loss as scaled (its weight the loss scale) while the gradients were clipped
    before the scale was divided out: the scale is the loss scaling's, not a loss counted twice."""
    return loss.check == "loop: loss" and loss.status == "warn" and "x that of its mean" in str(loss.value) and \
        any(v.check == "loop: gradients at optimizer.step()" and v.status == "fail" and
            "max_norm / scale" in str(v.value) for v in verdicts)
