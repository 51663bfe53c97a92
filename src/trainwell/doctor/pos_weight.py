"""``pos_weight`` turned the wrong way round in multi-label binary cross-entropy:
``nn.BCEWithLogitsLoss(pos_weight=pos / neg)`` makes each label's positives weigh less the rarer the label is,
the opposite of what ``pos_weight`` is for. Torch's documentation gives it as negatives / positives per label
(``pos_weight = (len(y) - y.sum(0)) / y.sum(0)``).

The weights are read from the loss's gradient, not from the loss object, so a hand-written weighted BCE is read
too. With logits z, 0/1 targets y and weight p_j on column j's positives, dL/dz = a sigmoid(z) where y = 0 and
-a p_j (1 - sigmoid(z)) where y = 1 (a: the reduction's factor, 1 / n for a mean): the negatives give a, each
column's positives give p_j. A reading is kept only when every negative gives the same a and every positive of a
column the same p_j, i.e. when the loss is exactly that BCE; each label's positive count comes from the targets."""

from __future__ import annotations

import torch

from trainwell.doctor.class_weights import MIN_RANK_CORRELATION, MIN_SPREAD, rank_correlation
from trainwell.doctor.verdict import Verdict

#: the verdict's value starts with this: it explains which labels the model favours, not the loss curve
POS_GROW = "pos_weight grows with the label's frequency"
TOL = 1e-3  # relative spread allowed between the elements that give one factor (float32 gradients)
FIX = ("pos_weight is negatives / positives per label: pos_weight = (len(y) - y.sum(0)) / y.sum(0), "
       "not y.sum(0) / (len(y) - y.sum(0))")


def _one_value(v: torch.Tensor) -> float | None:
    """The common value of ``v``'s elements (their median) when all lie within :data:`TOL` of it, else None."""
    if v.numel() == 0:
        return None
    m = float(v.median())
    return m if m > 0 and float((v - m).abs().max()) <= TOL * m else None


def read_pos_weight(z: torch.Tensor, g: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
    """Per output column, the weight of its positives relative to a negative's (NaN for a column with no positive
    read), from outputs ``z`` (N, L), their gradient ``g`` and 0/1 targets ``y`` of the same shape; None when
    the gradient is not a BCE with logits weighted per column on its positives (or the targets are not 0/1)."""
    if g is None or z.dim() != 2 or z.shape[1] < 3 or z.shape != g.shape or not isinstance(y, torch.Tensor) or \
            y.shape != z.shape or not y.is_floating_point():
        return None
    z, g, y = z.detach().double().cpu(), g.detach().double().cpu(), y.detach().double().cpu()
    if not bool(((y == 0) | (y == 1)).all()) or not bool(torch.isfinite(z).all() & torch.isfinite(g).all()):
        return None
    s = torch.sigmoid(z)
    negative = (y == 0) & (s > 1e-6)
    a = _one_value(g[negative] / s[negative])
    if a is None:
        return None
    positive = (y == 1) & (s < 1 - 1e-6)
    p = torch.where(positive, -g / (a * (1 - s)).clamp_min(1e-300), float("nan"))
    weights = p.nanmedian(0).values  # NaN for a column with no positive read
    spread = torch.where(positive, (p - weights).abs(), 0.0).amax(0)
    if bool((spread > TOL * weights.abs()).any()) or bool((weights[torch.isfinite(weights)] <= 0).any()):
        return None
    return weights


def inverted_pos_weight(reads: list, ys: list[torch.Tensor], name: str) -> Verdict | None:
    """A warn (named ``name``) when the positives' weights read (:func:`read_pos_weight`, one per step or batch)
    rise with the label's positive count in the targets ``ys`` (3 labels or more with both known, rank correlation
    >= 0.9, weights and counts each spread over 2x); None otherwise (no such reading, equal or balanced weights)."""
    reads = [r for r in reads if r is not None]
    if not reads or not ys:
        return None
    width = reads[0].numel()
    ys = [y for y in ys if y.is_floating_point() and y.dim() == 2 and y.shape[1] == width]
    if not ys:
        return None
    counts = torch.cat(ys).double().sum(0)
    logs = torch.stack([r.log() for r in reads if r.numel() == width])
    known = torch.isfinite(logs)
    seen = known.sum(0)
    weights = (torch.where(known, logs, 0.0).sum(0) / seen.clamp_min(1)).exp()
    labels = ((seen > 0) & (counts > 0)).nonzero().squeeze(1)
    if len(labels) < 3:
        return None
    weights, counts = weights[labels], counts[labels]
    if float(weights.max() / weights.min()) <= MIN_SPREAD or float(counts.max() / counts.min()) <= MIN_SPREAD or \
            rank_correlation(weights, counts) < MIN_RANK_CORRELATION:
        return None
    rare, common = int(counts.argmin()), int(counts.argmax())

    def positives(k: int) -> str:
        return f"{int(counts[k])} positive{'' if int(counts[k]) == 1 else 's'}"

    return Verdict(name, "warn", f"{POS_GROW}: inverted? label {int(labels[rare])} ({positives(rare)}) has "
                   f"pos_weight {float(weights[rare]):.3g}, label {int(labels[common])} ({positives(common)}) "
                   f"{float(weights[common]):.3g}",
                   "pos_weight that falls with the label's frequency (or equal weights)", FIX)


def check_pos_weight(loss_fn, out, y) -> Verdict | None:
    """``doctor.check``'s reading: the gradient ``loss_fn(out, y)`` sends to the model's outputs ``out`` on the
    check's batch, read as above against the batch's own positive counts (the verdict ``class weights``)."""
    if not isinstance(out, torch.Tensor) or not isinstance(y, torch.Tensor) or out.shape != y.shape or \
            out.dim() != 2 or not y.is_floating_point():
        return None
    z = out.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = loss_fn(z, y)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.requires_grad:
        return None
    (g,) = torch.autograd.grad(loss, z)
    return inverted_pos_weight([read_pos_weight(z, g, y)], [y], "class weights")
