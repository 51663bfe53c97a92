"""A soft Dice (or IoU) loss read from the gradient it sends to a watched model's outputs.

The soft Dice loss (Milletari, Navab & Ahmadi 2016, V-Net; Sudre et al. 2017) over a group of outputs o and
targets y is 1 - D with D = (2 sum(o y) + s) / (sum(o) + sum(y) + s), s a smoothing constant >= 0. Its gradient
with respect to each output is affine in that output's target:

    dL/do_i = c (-2 y_i / den + num / den^2) = a y_i + b,

with the same a and b for every output of the group (c: the group's weight, 1 for a sum over the whole batch,
1/G for a mean over G classes or images). From a and b the Dice itself is read, D = -2 b / a, then s from
D = (2 sum(o y) + s) / (sum(o) + sum(y) + s) and c from a; the form is taken when every group has 3 or more outputs
and fits the affine gradient to 1e-3, 0 <= s <= 1000 (|sum(o)| + sum(y) + 1), c > 0 and the loss's value is
sum_k c_k (1 - D_k) (or -sum_k c_k D_k) to 1e-3. The groups tried: the whole batch, each example (axis 0), each
class channel (axis 1), each example's channel. The soft IoU (Jaccard) loss
1 - (sum(o y) + s) / (sum(o) + sum(y) - sum(o y) + s) has a gradient of the same affine form and is read the same
way, with R = -b / (a + b). (A Dice whose denominator sums squares, sum(o^2), is not.)
Cross-entropy, MSE and focal losses have per-output terms their gradient depends on, and a Dice taken on
sigmoid(o) inside the loss sends o the gradient times sigma'(o): none of them fits. A two-class cross-entropy's
gradient (p - onehot(y)) / B sums to 0 over each example: a group of one example's two outputs fits any line, and
on a batch of one class whose examples repeat (a sampler drawing only a few) every group fits with D = 1 up to
rounding, whose s (2 sum(o y) - D (sum(o) + sum(y))) / (D - 1) is then vast; both are left out, and so is any
gradient that sums to 0 over the class axis of each example (:func:`shift_invariant`: cross-entropy, the
multi-class hinges ``F.multi_margin_loss`` and ``F.multilabel_margin_loss``).

Dice is a ratio of overlaps of probabilities: on raw scores (negative, or above 1) its denominator can reach 0
and its value leaves [0, 1] (the loss spikes, or falls below 0 while the segmentation gets no better), which no
learning rate mends. Outputs outside [0, 1] on steps whose loss reads as a soft Dice are that bug."""

from __future__ import annotations

import math

import torch

from trainwell.doctor.loss_form import zero_sum_rows

#: the most outputs read (each is copied in double precision a few times)
MOST = 1 << 22
#: relative residual of the gradient against the affine form, and of the loss's value against the Dice read
TOLERANCE = 1e-3
#: the largest smoothing read, in multiples of its group's |sum(o)| + sum(y) + 1 (smoothing constants are 1e-6..100)
LARGEST_SMOOTHING = 1e3


def _targets(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
    """``y`` as targets of ``z``'s shape, in double precision: the same elements (a (B, H, W) mask for (B, 1, H, W)
    outputs), or class indices one-hot along axis 1 of (B, C, ...) outputs; None when neither fits."""
    if y.numel() == z.numel():
        return y.detach().reshape(z.shape).double()
    if y.is_floating_point() or y.dtype == torch.bool or z.dim() < 2 or z.shape[1] < 2 or \
            (z.shape[0],) + tuple(z.shape[2:]) != tuple(y.shape):
        return None
    if int(y.min()) < 0 or int(y.max()) >= z.shape[1]:
        return None
    return torch.nn.functional.one_hot(y.detach().long(), z.shape[1]).movedim(-1, 1).double()


def _groupings(z: torch.Tensor) -> list[torch.Tensor]:
    """Group indices of each element of ``z``: one group, per example, per channel, per example's channel."""
    shape = z.shape
    whole = torch.zeros(shape, dtype=torch.long, device=z.device)
    found = [whole, torch.arange(shape[0], device=z.device).reshape((-1,) + (1,) * (z.dim() - 1)).expand(shape)]
    if z.dim() >= 2 and shape[1] >= 2:
        channel = torch.arange(shape[1], device=z.device).reshape((1, -1) + (1,) * (z.dim() - 2)).expand(shape)
        found += [channel, found[1] * shape[1] + channel]
    return [g.reshape(-1) for g in found]


def _affine(groups: torch.Tensor, y: torch.Tensor, g: torch.Tensor, k: int) -> tuple | None:
    """Per group, the least-squares (a_k, b_k) of g = a_k y + b_k; None when a group has fewer than 3 outputs (two
    points fit any line: the two classes of one example), its targets are all one value (a and b cannot be told
    apart) or the fit misses by more than :data:`TOLERANCE`."""
    def total(v: torch.Tensor) -> torch.Tensor:
        return torch.zeros(k, dtype=v.dtype, device=v.device).index_add_(0, groups, v)

    n, sy, syy, sg, sgy = total(torch.ones_like(y)), total(y), total(y * y), total(g), total(g * y)
    spread = n * syy - sy * sy
    if bool((n < 3).any()) or bool((spread <= 1e-9 * n * n).any()):
        return None
    a = (n * sgy - sy * sg) / spread
    b = (sg - a * sy) / n
    if float((g - a[groups] * y - b[groups]).norm()) > TOLERANCE * float(g.norm()) or bool((a == 0).any()):
        return None
    return a, b, total


def _readings(a: torch.Tensor, b: torch.Tensor, so: torch.Tensor, sy: torch.Tensor, soy: torch.Tensor) -> list:
    """The overlap losses an affine gradient (a, b) per group can be, with sums so = sum(o), sy = sum(y) and
    soy = sum(o y) per group: (name, the overlap ratio R_k, its weight c_k, its smoothing s_k), each loss being
    sum_k c_k (1 - R_k). Dice: R = (2 soy + s) / (so + sy + s), a = -2c / den, b = c R / den, so R = -2b / a.
    IoU (Jaccard): R = (soy + s) / (so + sy - soy + s), a = -c (1 + R) / den, b = c R / den, so R = -b / (a + b).
    Those whose smoothing is negative or weight not positive are left out, and those whose smoothing is over
    :data:`LARGEST_SMOOTHING` times the group's sums: a ratio R = 1 up to rounding, which no overlap loss gives
    while 2 soy != so + sy but a cross-entropy's gradient (summing to 0 over each example) does."""
    found = []
    with torch.no_grad():
        for name, ratio in (("Dice", -2 * b / a), ("IoU", -b / (a + b))):
            if not bool(torch.isfinite(ratio).all()) or bool(((ratio - 1).abs() < 1e-9).any()):
                continue
            if name == "Dice":
                smooth = (2 * soy - ratio * (so + sy)) / (ratio - 1)
                weight = -a * (so + sy + smooth) / 2
            else:
                union = so + sy - soy
                smooth = (soy - ratio * union) / (ratio - 1)
                weight = -a * (union + smooth) / (1 + ratio)
            sums = so.abs() + sy + 1
            if bool((smooth >= -TOLERANCE * sums).all()) and bool((smooth <= LARGEST_SMOOTHING * sums).all()) and \
                    bool((weight > 0).all()):
                found.append((name, ratio, weight, smooth))
    return found


def shift_invariant(g: torch.Tensor) -> bool:
    """Whether the gradient on (B, C, ...) outputs (C >= 3) sums to 0 over the class axis at every example and
    position: a loss unchanged when a constant is added to each example's scores (cross-entropy, the multi-class
    hinge ``F.multi_margin_loss``, ``F.multilabel_margin_loss``). A soft Dice or IoU of the outputs is not: its
    gradient a y_i + b sums to a + C b over one example's one-hot classes, 0 only where its overlap ratio R is 2 / C
    (Dice) or 1 / (C - 1) (IoU). A hinge whose every margin is violated (its first steps) sends b = 1 / (B C) off
    the label and a + b = -(C - 1) / (B C) at it, an IoU's form at R = 1 / (C - 1), and its value meets that IoU's to
    1e-3 whenever the off-label scores sum to about 0: on about 1% of such batches."""
    return g.dim() >= 2 and zero_sum_rows(g.movedim(1, -1))


def read_dice(z: torch.Tensor, g: torch.Tensor, y: torch.Tensor, value: float, unscale: float = 1.0) -> dict | None:
    """On an observed step: when the gradient ``g`` the loss sent to the outputs ``z`` is a soft Dice (or IoU)
    loss's against the targets ``y`` (see the module; ``value``: the loss's value, ``unscale``: 1 / the loss scale
    the gradient carries), which loss ("Dice" or "IoU"), the outputs' range, the number of groups, their total
    weight and the median smoothing; else None."""
    if not z.is_floating_point() or g is None or g.shape != z.shape or not 16 <= z.numel() <= MOST or \
            not math.isfinite(value) or shift_invariant(g):
        return None
    t = _targets(z, y)
    if t is None:
        return None
    o, gd, t = z.detach().double().flatten(), g.detach().double().flatten() * unscale, t.flatten().to(z.device)
    if not bool(torch.isfinite(o).all() & torch.isfinite(gd).all()) or float(gd.norm()) == 0:
        return None
    for groups in _groupings(z):
        k = int(groups.max()) + 1
        fitted = _affine(groups, t, gd, k)
        if fitted is None:
            continue
        a, b, total = fitted
        for name, ratio, weight, smooth in _readings(a, b, total(o), total(t), total(o * t)):
            one_minus = float((weight * (1 - ratio)).sum())
            negated = -float((weight * ratio).sum())
            scale = abs(value) + float(weight.sum())
            if min(abs(one_minus - value), abs(negated - value)) <= TOLERANCE * scale:
                return {"loss": name, "lowest": float(o.min()), "highest": float(o.max()), "groups": k,
                        "weight": float(weight.sum()), "smooth": float(smooth.median())}
    return None
