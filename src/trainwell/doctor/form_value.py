"""The loss value a form read from the output gradient implies: tells a loss whose gradient only looks like it apart.

:mod:`~trainwell.doctor.loss_form` reads the loss from the gradient it sends to the outputs. Two of its forms are
bugs, NLL on outputs that are not log-probabilities and cross-entropy on probabilities (a softmax applied twice),
and both can be mimicked on a step by another loss: where the outputs of a row are nearly equal (capsule lengths
near 0 at init, Sabour et al. 2017) and only the label's output gets a gradient (the margin loss
``relu(0.9 - L_y)^2`` while every other length is under 0.1), the gradient is ``-a e_y`` with nearly equal a, NLL's
form, and within the fit's tolerance also the double softmax's. The value tells them apart: NLL is linear in its
inputs, so its value is ``-sum_i a_i z_{i, y_i}`` exactly for any reduction, class weights or ignored rows, and
cross-entropy on rows p is ``sum_i a_i (logsumexp(p_i) - p_{i, y_i})``. A value far from the form's is another loss
(the margin loss above gives 0.81 where NLL would give -0.0003): the step's form is then not read.
"""

from __future__ import annotations

import math

import torch

RELATIVE = 0.05  # a value this far from the form's (relative), beyond ABSOLUTE, is another loss's
ABSOLUTE = 1e-3


def form_value(form: str, z: torch.Tensor, g: torch.Tensor, a: torch.Tensor, softmax_first: bool = False) -> float:
    """The value of the loss ``form`` ('nll' or 'cross_entropy_on_probabilities') on the rows ``z`` (N, C) whose
    gradient ``g`` read the labels (each row's argmin) and the per-row weights ``a``; ``softmax_first``: the
    cross-entropy takes softmax(z) (a softmax applied twice), not the rows themselves; NaN for other forms."""
    label = g.argmin(1, keepdim=True)
    if form == "nll":
        return float(-(a * z.gather(1, label).squeeze(1)).sum())
    if form == "cross_entropy_on_probabilities":
        p = torch.softmax(z, 1) if softmax_first else z
        return float((a * (torch.logsumexp(p, 1) - p.gather(1, label).squeeze(1))).sum())
    return math.nan


def disagrees(implied: float | None, value: float, unscale: float = 1.0) -> bool:
    """Whether the loss ``value`` given to ``w.step`` is far from the ``implied`` value of the form read from the
    gradient (``unscale``: 1 / the loss scale the gradient carries, AMP's GradScaler)."""
    if implied is None or not math.isfinite(implied) or not math.isfinite(value):
        return False
    implied *= unscale
    return abs(value - implied) > RELATIVE * max(abs(value), abs(implied)) + ABSOLUTE
