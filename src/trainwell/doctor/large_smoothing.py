"""``loop: label smoothing``: a label smoothing so large that the label barely stands out of the other classes.

``nn.CrossEntropyLoss(label_smoothing=0.9)`` written for "90% on the label" (torch's epsilon is the share moved off
the label, spread over all C classes: 0.1 is the usual value, Szegedy et al. 2016; Muller et al. 2019) trains
towards 1 - eps + eps / C on the label and eps / C elsewhere: 0.325 against 0.225 over 4 classes. The loss then
stays near that target's entropy, close to ln C, and reads like a learning rate too low.

Read on the observed steps from the outputs z, their gradient g and the integer labels y given to ``w.step``: a
label-smoothed mean cross-entropy has g = a (softmax(z) - (1 - eps) onehot(y) - eps / C), one least-squares fit
of g on (softmax(z), 1, onehot(y)) over every entry (to 1e-3 of g's norm; class weights, soft targets and mixup do
not fit). A warning when the median epsilon of 2 reads or more is :data:`LARGE` or above. Unlike the reading
without labels (:func:`~trainwell.doctor.loss_form.read_form`, which finds each row's label as the most negative
gradient entry), it does not need the label's gradient to be negative, which a large epsilon breaks."""

from __future__ import annotations

import torch

from trainwell.doctor.verdict import Verdict

NAME = "loop: label smoothing"
LARGE = 0.5  # an epsilon at or above this puts at most 0.5 + 0.5 / C on the label
READS = 8  # observed steps read, at most
MOST = 1 << 18  # scores read per step, at most (a language model's vocabulary times its tokens is not read)


def read_smoothing(z: torch.Tensor, g: torch.Tensor, y) -> float | None:
    """The epsilon of a label-smoothed mean cross-entropy that fits the gradient ``g`` on the scores ``z`` with
    labels ``y``; None when it does not fit."""
    if not isinstance(y, torch.Tensor) or g is None or z.dim() != 2 or g.shape != z.shape or y.dim() != 1 or \
            y.is_floating_point() or y.is_complex() or len(y) != len(z) or z.shape[1] < 3 or len(z) < 8 or \
            z.numel() > MOST:
        return None
    classes = z.shape[1]
    labels = y.detach().to(z.device).long()
    if int(labels.min()) < 0 or int(labels.max()) >= classes:
        return None
    p = torch.softmax(z.detach().double().cpu(), 1)
    onehot = torch.nn.functional.one_hot(labels.cpu(), classes).double()
    target = g.detach().double().cpu().flatten()
    design = torch.stack([p.flatten(), torch.ones_like(target), onehot.flatten()], 1)
    gram = design.T @ design
    if not (bool(torch.isfinite(gram).all()) and bool(torch.isfinite(target).all())) or \
            float(torch.linalg.det(gram)) <= 1e-12 * float(gram.diagonal().prod()):
        return None  # non-finite scores, or columns that do not tell the three terms apart (one class per batch)
    coef = torch.linalg.solve(gram, design.T @ target)  # least squares by the normal equations (3 x 3)
    a, off, on = (float(c) for c in coef)
    norm = float(target.norm())
    if a <= 0 or norm <= 0 or float((design @ coef - target).norm()) > 1e-3 * norm:
        return None
    eps = 1.0 + on / a  # on = -a (1 - eps)
    if abs(-off - a * eps / classes) > 1e-3 * a:  # off = -a eps / C
        return None
    return eps


def large_smoothing(reads: list[float], classes: int | None) -> Verdict | None:
    """The warning described in the module docstring, or None."""
    if len(reads) < 2:
        return None
    eps = sorted(reads)[len(reads) // 2]
    if not LARGE <= eps < 1.0:
        return None
    where = f": {1 - eps + eps / classes:.3g} on the label against {eps / classes:.3g} on each other class" \
        if classes else ""
    # not "label smoothing ..." (smoothing applied twice, which leaves the loss curve as it reads): this one
    # explains a loss that stays near ln C
    return Verdict(NAME, "warn", f"an epsilon of {eps:.2g} read on {len(reads)} observed steps{where}: the model is "
                   "trained to be nearly unsure", f"label smoothing under {LARGE:g} (0.1 is usual)",
                   "label_smoothing is the share of the target moved off the label, spread over all classes, not "
                   "the label's confidence: for 90% on the label pass label_smoothing=0.1 (Szegedy et al. 2016)")
