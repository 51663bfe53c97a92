"""Regression targets as the pre-flight checks read them: how far they sit from zero mean and unit scale (their
offset against their spread, and their scale in raw units), and the loss the best constant predictor gives on them.

A network's outputs start near 0, so at initialization a regression loss is about that of a zero output: for MSE
mean(y^2) = var(y) + mean(y)^2. When mean(y)^2 dwarfs var(y) (house prices of 2e5 +- 5e4 in dollars) the initial
loss is many times what predicting the targets' mean would give, and training spends its steps learning the
offset: the fix is to standardize the targets ((y - mean) / std with the training set's statistics) and invert
the transform at prediction.

Example:
    >>> import torch
    >>> y = 2e5 + 5e4 * torch.randn(512, 1, generator=torch.Generator().manual_seed(0))
    >>> offset_ratio(y) > 10, offset_ratio((y - y.mean()) / y.std()) < 1.01
    (True, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from trainwell.doctor import outputs as O
from trainwell.doctor.loss_form import one_output_per_row
from trainwell.doctor.loss_kinds import loss_kind
from trainwell.doctor.verdict import Verdict

#: the advice for regression targets in raw units, from ``doctor.check``'s ``targets`` and ``doctor.watch``'s
#: ``loop: labels`` alike
RAW_ADVICE = ("standardize the targets ((y - mean) / std with the training set's mean and std) and invert it for "
              "predictions (pred * std + mean): the loss and its gradients grow with the targets' scale, and outputs "
              "that start near 0 spend the training on it")

#: mean(y^2) / var(y) above this: the targets' offset dominates their spread (targets uniform on [0, 1] give 4)
OFFSET_RATIO = 10.0


def offset_ratio(y: torch.Tensor) -> float:
    """mean(y^2) / var(y), per output column and averaged: the zero output's MSE over the targets' mean's MSE
    (1 for centred targets; inf for constant ones)."""
    y = y.detach().double().reshape(len(y), -1)
    var = float(y.var(0, unbiased=False).mean())
    return float((y * y).mean()) / var if var > 0 else math.inf


def describe(y: torch.Tensor) -> str:
    """The targets' mean and std, e.g. ``mean 2e+05, std 5.1e+04``."""
    y = y.detach().double()
    return f"mean {float(y.mean()):.3g}, std {float(y.std()) if y.numel() > 1 else 0.0:.3g}"


def constant_loss(loss_fn: Callable, out, y: torch.Tensor) -> float | None:
    """The user's loss on the best constant prediction, per output column: the targets' mean (MSE), their
    median (L1), the better of the two (Huber, smooth L1). None when the targets are not floating point or the
    output's scores do not have the targets' shape."""
    scores = O.logits(out)
    if scores is None or not y.is_floating_point() or scores.shape != y.shape or len(y) < 2:
        return None
    values = []
    with torch.no_grad():
        for centre in (y.mean(0, keepdim=True), y.median(0, keepdim=True).values):
            guess = centre.to(scores.dtype).expand_as(scores)
            loss = loss_fn(O.replace_logits(out, guess), y)
            values.append(float(loss.mean()) if loss.dim() else float(loss))
    finite = [v for v in values if math.isfinite(v)]
    return min(finite) if finite else None


def far_from_unit(y) -> str | None:
    """A sentence when floating-point targets are far from zero mean and unit scale (their offset dominates
    their spread, :data:`OFFSET_RATIO`), naming their mean and std; None otherwise, also for targets that are
    labels or probabilities (:func:`labels_or_probabilities`). For several targets (a
    :class:`~trainwell.doctor.inputs.Targets`) the first floating-point one that is far from it, by name."""
    if not isinstance(y, torch.Tensor):
        for name, t in y.items():
            found = far_from_unit(t)
            if found is not None:
                return found.replace("the targets are", f"the targets {name} are", 1)
        return None
    if not y.is_floating_point() or len(y) < 2 or offset_ratio(y) <= OFFSET_RATIO or not float(y.std()) > 0 or \
            labels_or_probabilities(y):
        return None
    return (f"the targets are far from zero mean and unit scale ({describe(y)}): standardize them ((y - mean) / std "
            f"with the training set's mean and std) and invert at prediction (pred * std + mean)")


def labels_or_probabilities(y: torch.Tensor) -> bool:
    """Whether floating-point targets are class labels or probabilities: every value 0 or 1 (binary labels,
    one-hot or multi-hot rows), or rows of values in [0, 1] that sum to 1 (soft labels). Their offset is the class
    prior, not a raw unit: a Brier score (squared error between softmax probabilities and one-hot targets) on a
    rare class has mean(y)^2 >> var(y) in the rare column, yet the probabilities already have the targets' scale."""
    y = y.detach()
    if bool(((y == 0) | (y == 1)).all()):
        return True
    return y.dim() >= 2 and y.shape[-1] > 1 and bool(((y >= 0) & (y <= 1)).all()) and \
        bool(((y.sum(-1) - 1).abs() < 1e-4).all())


def chosen_output_regression(loss_fn: Callable, out, y) -> bool:
    """Whether the loss regresses one chosen output of each (B, A) row of the model's scores ``out`` (a Q-network's
    Q(s, a) gathered at the actions in ``y``, :func:`~trainwell.doctor.loss_form.one_output_per_row`), read from
    the gradient the loss sends to the scores."""
    scores = O.logits(out)
    if scores is None or not scores.is_floating_point() or scores.dim() != 2:
        return False
    z = scores.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            value = loss_fn(O.replace_logits(out, z), y)
            value = value.mean() if value.dim() else value
            (g,) = torch.autograd.grad(value, z, allow_unused=True)
    except Exception:  # noqa: BLE001 - a loss this reading cannot run is not read
        return False
    return one_output_per_row(z.detach(), g)


#: regression targets with a std above RAW_STD or an |y| above RAW_TOP are in raw units (``loop: labels`` reads
#: the same): a network whose outputs start near 0 must grow its last layer by their scale, the loss's gradients
#: grow with it (plain SGD at a usual rate diverges on targets of std ~300), and Adam's steps of size lr take that
#: many times longer to cover it
RAW_STD, RAW_TOP = 5.0, 50.0

_ELEMENTWISE = ("mse", "l1", "smooth_l1", "huber")


def raw_units(y: torch.Tensor) -> bool:
    """Whether the finite entries of floating-point targets are far from unit scale (:data:`RAW_STD`,
    :data:`RAW_TOP`)."""
    every = y.detach().reshape(-1).double()
    every = every[torch.isfinite(every)]
    return every.numel() > 1 and (float(every.std()) > RAW_STD or float(every.abs().max()) > RAW_TOP)


def raw_unit_targets(y, loss_fn: Callable, out) -> Verdict | None:
    """The pre-flight's warning for regression targets in raw units under an elementwise regression loss (MSE, L1,
    Huber, smooth L1) on outputs of the targets' shape; None otherwise (labels and probabilities are not read)."""
    scores = O.logits(out)
    if not isinstance(y, torch.Tensor) or not y.is_floating_point() or loss_kind(loss_fn) not in _ELEMENTWISE or \
            scores is None or scores.shape != y.shape or not raw_units(y) or labels_or_probabilities(y):
        return None
    top = float(y.detach().abs().max())
    return Verdict("targets", "warn", f"regression targets in raw units: {describe(y)}, max |y| {top:.3g}",
                   f"targets of unit scale (std <= {RAW_STD:g}, |y| <= {RAW_TOP:g})",
                   RAW_ADVICE)
