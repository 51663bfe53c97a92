"""The loss curve's "good" on a cosine classifier that stalled near ln C: its normalized features collapsed to one
direction in the first steps and stayed there.

A cosine classifier (``s * normalize(h) @ normalize(w).T``) starts far above ln C when s is large (16, 30: CosFace,
ArcFace), so its drop to about ln C reads as a steady decrease. The gradient through ``F.normalize(h)`` scales as
s / ||h||: with the features' norm small at the start and a large rate (SGD lr 0.1, momentum 0.9 on sklearn's
digits), the first steps move every example's features far in one shared direction. Measured there: their mean
pairwise cosine goes 0.80 -> 0.998 at the first step and 1.000 by the third, their norm 0.6 -> 8 -> ~470, and the
last feature layer's weight norm (scale-invariant: only its output's direction counts) grows 8.6x, so the
effective step on their direction, lr / ||w||^2 (Hoffer et al. 2018, "Norm matters"), falls ~70x: the collapse is
frozen in. Every input then scores the same logits and the loss stays at 2.25 against ln 10 = 2.30. It is not the
scale capping the logits (s = 16 allows a loss of ~1e-7; the logits the first step scored already reach 8, a floor
below 0.01), nor the class weights' init (norm ~18 from the start stalls alike): lr 0.01 reaches 0.54, s = 4
reaches 0.42, and no momentum 0.90 on the same 66 steps.

Read at report time when the curve passes and the loss is a mean cross-entropy over C classes
(:func:`~trainwell.doctor.memorizing_curve.mean_cross_entropy_classes`): the last steps' mean at
:data:`STALLED` x ln C or above, the model's last layers scale-invariant
(:func:`~trainwell.doctor.scale_invariant_rate.invariant_tail`), the inputs of the last of them pointing one way
for every example of the first observed batch (mean pairwise cosine :data:`COLLAPSED` or more), and the floor
that the largest first-step logit allows (a lower bound on s) under half the loss. The curve then warns, naming the
collapse and the norm growth.
"""

from __future__ import annotations

import math

import torch

from trainwell.doctor.diagnosis import LR_CURVE
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.memorizing_curve import mean_cross_entropy_classes
from trainwell.doctor.scale_invariant_rate import StartNorms, invariant_tail
from trainwell.doctor.verdict import Verdict

STALLED = 0.9  # the last steps' mean loss at this share of ln C or above: an untrained classifier's level
COLLAPSED = 0.99  # mean pairwise cosine of the head's inputs over the batch's examples, at least
ROWS = 32  # examples of the first observed batch read
TAIL = 0.1  # the share of the last steps whose mean loss is read
LEAST_STEPS = 20  # steps recorded, at least


def cosine_floor(scale: float, classes: int) -> float:
    """The least cross-entropy a head scoring ``scale * cos`` over ``classes`` classes reaches: cos 1 on the label,
    -1 / (C - 1) on the others (the class weights spread as a simplex)."""
    return math.log1p((classes - 1) * math.exp(-scale * classes / (classes - 1)))


def _pairwise_cosine(rows: torch.Tensor) -> float:
    """The mean cosine between the rows (flattened), each pair once and each row with itself left out."""
    flat = torch.nn.functional.normalize(rows.detach().double().flatten(1), dim=1)
    n = len(flat)
    return (float((flat @ flat.T).sum()) - n) / (n * (n - 1))


def collapsed_head(curve: Verdict, start: StartNorms, probe, forward: tuple | None, lr: float | None,
                   losses: list[float]) -> Verdict:
    """``curve`` (the loss curve's verdict) turned into a warning where it passes but the run stalled near ln C
    with a scale-invariant head whose inputs collapsed to one direction (the module docstring); unchanged
    otherwise. ``forward``: the first observed training forward (args, kwargs); ``probe``: its hooks record
    nothing of the readings' forwards."""
    if curve.check != LR_CURVE or curve.status != "pass" or forward is None or len(losses) < LEAST_STEPS:
        return curve
    classes = mean_cross_entropy_classes(probe.steps)
    first = probe.steps[0].get("first_logits") if probe.steps else None
    if not classes or classes < 2 or first is None:
        return curve
    tail = [v for v in losses[-max(2, int(TAIL * len(losses))):] if math.isfinite(v)]
    level = sum(tail) / len(tail) if tail else math.nan
    if not level >= STALLED * math.log(classes):
        return curve
    floor = cosine_floor(float(first.detach().abs().amax()), classes)
    if floor >= level / 2:  # the first logits do not show a scale that allows far less
        return curve
    args, kwargs = forward
    if kwargs or not args or not all(isinstance(a, torch.Tensor) and a.dim() for a in args):
        return curve
    rows, model = tuple(a[:ROWS] for a in args), probe.model
    x = rows[0] if len(rows) == 1 else Inputs(rows)
    probe.reading = True
    try:
        found = invariant_tail(model, x)
        if not found:
            return curve
        seen: list[torch.Tensor] = []
        hook = model.get_submodule(found[0]).register_forward_hook(
            lambda m, i, o: seen.append(i[0]) if i and isinstance(i[0], torch.Tensor) else None)
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                call(model, x)
        finally:
            hook.remove()
            model.train(was)
    except Exception:  # noqa: BLE001 - a forward this reading cannot follow: the curve stands
        return curve
    finally:
        probe.reading = False
    if not seen or len(seen[0]) < 4 or _pairwise_cosine(seen[0]) < COLLAPSED:
        return curve
    cosine = _pairwise_cosine(seen[0])
    grown = []  # the layers before the head first: their norm is the features' (the head's own norm is the class
    for module in found[1:] or found:  # weights')
        for name, p in model.get_submodule(module).named_parameters(recurse=False):
            full = f"{module}.{name}" if module else name
            before = start.norms.get(full)
            if before:
                grown.append((float(p.detach().double().norm()) / before, full))
    growth = ""
    if grown:
        ratio, name = max(grown)
        growth = (f"; '{name}' (scale-invariant) grew {ratio:.3g}x, so the effective step lr / ||w||^2 fell "
                  f"{ratio ** 2:.3g}x and the collapse stays")
    rate = f" (lr = {lr:g})" if lr is not None else ""
    return Verdict(LR_CURVE, "warn", f"stalled near ln C: the last steps average {level:.3g} against "
                   f"ln {classes} = {math.log(classes):.3g}, far above what the head's scale allows (under "
                   f"{floor:.2g}); the inputs of the normalized head '{found[0] or 'model'}' point one way for every "
                   f"example (mean pairwise cosine {cosine:.3f}): they collapsed in the first steps{growth} (the "
                   f"curve alone read {curve.value})",
                   curve.expected, f"the first steps were too large for a head that normalizes its inputs: its "
                   f"gradient scales as s / ||h||, so they threw every example's features one way; lower the "
                   f"learning rate{rate} 10x or warm it up over the first epoch, or use a smaller scale s; a larger "
                   "rate only collapses them faster (Hoffer et al. 2018, 'Norm matters')")
