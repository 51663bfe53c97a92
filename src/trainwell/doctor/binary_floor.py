"""The lowest value binary cross-entropy on soft targets can reach, read from the loss a hand-written loop
back-propagates, with or without the targets.

Binary cross-entropy against a target y in [0, 1], -(y ln p + (1 - y) ln(1 - p)), is at least the binary entropy
H(y) = -(y ln y + (1 - y) ln(1 - y)), reached at p = y. On hard 0/1 targets that floor is 0; on soft targets (an
autoencoder's pixels in [0, 1], a teacher's probabilities) it is their mean entropy, and a loss curve's drop is
measured towards it (:func:`~trainwell.doctor.diagnosis.learning_rate_diagnosis`), not towards 0: an autoencoder
that reached it has converged, not stalled.

The targets can be read back from the gradient ``g`` the loss sends to the model's outputs:

- on logits z (``BCEWithLogitsLoss``): dL/dz = a (sigmoid(z) - y), so y = sigmoid(z) - g / a;
- on probabilities p (``BCELoss`` after a Sigmoid): dL/dp = a (p - y) / (p (1 - p)), so y = p - g p (1 - p) / a
  (torch clamps p (1 - p) at 1e-12, and each log at -100: the same clamps are applied here);
- on logits squashed inside the loss (``BCEWithLogitsLoss`` given ``sigmoid(z)``, which applies a second sigmoid):
  with s = sigmoid(z), dL/dz = a s (1 - s) (sigmoid(s) - y), so y = sigmoid(s) - g / (a s (1 - s)); s (1 - s) is
  at least 0.197 there, so nothing is amplified. Such a loss cannot go below softplus(s) - y s at s in [0, 1]:
  about 0.5 on balanced 0/1 targets (read as ``on='sigmoid_logits'``, with that floor);

with a the reduction's weight: 1/n for a mean over the n output elements, 1/B for a sum per example averaged over
the B examples (a VAE's reconstruction term), 1 for a sum. A reading holds when the targets so recovered lie in
[0, 1] and the loss's value (the one given to ``w.step``) equals a times the summed BCE of the outputs against
them: the value rules out another loss (a squared error on outputs in [0, 1]) whose gradient happens to give
targets in that range.

Example:
    >>> import torch, torch.nn.functional as F
    >>> p = torch.rand(16, 8, dtype=torch.float64, requires_grad=True)
    >>> y = torch.rand(16, 8, dtype=torch.float64)
    >>> loss = F.binary_cross_entropy(p, y)
    >>> loss.backward()
    >>> read = read_binary(p.detach(), p.grad, float(loss))
    >>> read["on"], read["reduction"], abs(read["floor"] - float(F.binary_cross_entropy(y, y))) < 1e-9
    ('probabilities', 'mean', True)
"""

from __future__ import annotations

import math

import torch

#: recovered targets may leave [0, 1] by this much (float32 round-off), the loss's value miss by this share
RANGE_TOL, VALUE_TOL = 1e-3, 1e-4


def binary_entropy(y: torch.Tensor) -> torch.Tensor:
    """Elementwise -(y ln y + (1 - y) ln(1 - y)) for y in [0, 1] (0 at y = 0 or 1)."""
    y = y.double().clamp(0.0, 1.0)
    return -(torch.xlogy(y, y) + torch.xlogy(1 - y, 1 - y))


def _weights(z: torch.Tensor) -> list[tuple[str, float]]:
    """The reductions' weights a for outputs ``z``: a mean over the elements, a sum per example averaged over the
    batch (when the rows hold several elements), a sum."""
    n, rows = z.numel(), len(z) if z.dim() else 1
    out = [("mean", 1.0 / n)]
    if 1 < rows < n:
        out.append(("per_example", 1.0 / rows))
    return [*out, ("sum", 1.0)]


def read_binary(z: torch.Tensor, g: torch.Tensor | None, loss: float, references: list = ()) -> dict | None:
    """The binary cross-entropy that outputs ``z``, their gradient ``g`` and the loss's value ``loss`` read as, or
    None: a dict with ``on`` ('logits', 'probabilities' or 'sigmoid_logits': BCE with logits given sigmoid(z)),
    ``reduction`` ('mean', 'per_example', 'sum'), ``elements`` (z's size), ``targets`` (the recovered targets,
    float64), ``floor`` (the lowest value that loss reaches on them), ``range`` (z's lowest and highest) and
    ``extra`` (the loss's value above that BCE: 0, or another term, see :func:`_with_other_term`).
    ``references``: tensors the targets may equal (the targets given, the forward's inputs)."""
    if g is None or z.shape != g.shape or z.numel() < 2 or not z.is_floating_point() or \
            not math.isfinite(loss) or loss <= 0:
        return None
    z, g = z.detach().double(), g.detach().double()
    if not bool(torch.isfinite(g).all()) or not bool(torch.isfinite(z).all()) or float(g.abs().sum()) == 0.0:
        return None
    s = torch.sigmoid(z)
    candidates = [("logits", s, None)]
    if float(z.min()) >= 0.0 and float(z.max()) <= 1.0:
        candidates.append(("probabilities", z, (z * (1 - z)).clamp_min(1e-12)))
    candidates.append(("sigmoid_logits", torch.sigmoid(s), 1.0 / (s * (1 - s))))
    for on, p, slope in candidates:
        for reduction, a in _weights(z):
            y = p - g / a if slope is None else p - g * slope / a
            if float(y.min()) < -RANGE_TOL or float(y.max()) > 1 + RANGE_TOL:
                continue
            y = y.clamp(0.0, 1.0)
            if on == "logits":  # softplus(z) - y z, stably
                terms = torch.nn.functional.softplus(z) - y * z
            elif on == "sigmoid_logits":
                terms = torch.nn.functional.softplus(s) - y * s
            else:
                terms = -(y * z.log().clamp_min(-100) + (1 - y) * (1 - z).log().clamp_min(-100))
            value = a * float(terms.sum())
            if abs(value - loss) <= VALUE_TOL * abs(loss) + 1e-7:
                floor = squashed_floor(y) if on == "sigmoid_logits" else binary_entropy(y)
                return {"on": on, "reduction": reduction, "elements": z.numel(), "targets": y,
                        "floor": a * float(floor.sum()), "range": (float(z.min()), float(z.max())), "extra": 0.0}
    return _squashed_pos_weighted(z, g, loss) or _with_other_term(z, g, loss, references)


def _squashed_pos_weighted(z: torch.Tensor, g: torch.Tensor, loss: float) -> dict | None:
    """The ``sigmoid_logits`` reading (BCE with logits given s = sigmoid(z)) of a loss with a ``pos_weight`` w per
    label (one for (B,) or (B, 1) outputs, one per column of (B, K) ones), as an imbalanced tabular or multi-label
    task sets it: dL/ds = a sigmoid(s) on a 0 target and a w (sigmoid(s) - 1) on a 1 target. Read when every
    element is one or the other (w > 0 and not 1, the same over a label's positives, where 1 - sigmoid(s) is not
    rounded away) and the loss's value equals a sum((1 - y) softplus(s) + w y softplus(-s)). Its floor, on
    s in [0, 1], is ln 2 on a 0 target and w softplus(-1) on a 1 target."""
    s = torch.sigmoid(z)
    p = torch.sigmoid(s)
    columns = z.reshape(len(z), -1) if z.dim() > 1 else z.reshape(-1, 1)
    for reduction, a in _weights(z):
        gn = g / (a * s * (1 - s))
        negative = (gn - p).abs() <= 1e-3 * p
        if bool(negative.all()) or not bool(negative.any()):
            continue
        ratio = (gn / (p - 1)).reshape(columns.shape)
        positive = ~negative.reshape(columns.shape)
        readable = positive & ((1 - p).reshape(columns.shape) > 1e-3)
        w = torch.ones(columns.shape[1], dtype=z.dtype)
        for c in range(columns.shape[1]):
            r = ratio[readable[:, c], c]
            if len(r) == 0 and bool(positive[:, c].any()):
                break
            if len(r) and (float(r.min()) <= 0 or float(r.max()) > (1 + 1e-3) * float(r.min())):
                break
            w[c] = float(r.mean()) if len(r) else 1.0
        else:
            if bool(((w - 1).abs() < 1e-3).all()):
                continue
            y = positive.double()
            wy = w[None, :] * y
            terms = (1 - y) * torch.nn.functional.softplus(s.reshape(columns.shape)) + \
                wy * torch.nn.functional.softplus(-s.reshape(columns.shape))
            if abs(a * float(terms.sum()) - loss) > VALUE_TOL * abs(loss) + 1e-7:
                continue
            floor = (1 - y) * math.log(2) + wy * math.log1p(math.exp(-1.0))
            return {"on": "sigmoid_logits", "reduction": reduction, "elements": z.numel(),
                    "targets": y.reshape(z.shape), "floor": a * float(floor.sum()),
                    "range": (float(z.min()), float(z.max())), "extra": 0.0, "pos_weight": w.tolist()}
    return None


def _with_other_term(z: torch.Tensor, g: torch.Tensor, loss: float, references: list) -> dict | None:
    """The reading of a loss that adds a term the outputs do not reach to a BCE on them: a VAE's KL on the
    encoder's mean and log-variance beside its reconstruction. The gradient at the outputs is the BCE's alone, so
    the targets it gives are exact; they must equal one of ``references`` (the targets given, or the input the model
    reconstructs), and the loss's value must exceed the BCE (``extra`` the rest). Its ``floor`` is the BCE's, the
    loss's lowest value when the other term is at least 0 (a KL is): a lower bound."""
    refs = [r.detach().cpu().double() for r in references if isinstance(r, torch.Tensor) and
            r.is_floating_point() and r.shape == z.shape]
    if not refs:
        return None
    for on in ("logits", "probabilities"):
        p = torch.sigmoid(z) if on == "logits" else z
        if on == "probabilities" and (float(z.min()) < 0.0 or float(z.max()) > 1.0):
            continue
        for reduction, a in _weights(z):
            y = p - g / a if on == "logits" else p - g * (z * (1 - z)).clamp_min(1e-12) / a
            if float(y.min()) < -RANGE_TOL or float(y.max()) > 1 + RANGE_TOL:
                continue
            y = y.clamp(0.0, 1.0)
            if not any(torch.allclose(y, r.to(y.device), atol=RANGE_TOL) for r in refs):
                continue
            terms = torch.nn.functional.softplus(z) - y * z if on == "logits" else \
                -(y * z.log().clamp_min(-100) + (1 - y) * (1 - z).log().clamp_min(-100))
            value = a * float(terms.sum())
            if loss > value + VALUE_TOL * abs(loss) + 1e-7:
                return {"on": on, "reduction": reduction, "elements": z.numel(), "targets": y,
                        "floor": a * float(binary_entropy(y).sum()), "range": (float(z.min()), float(z.max())),
                        "extra": loss - value, "spread": _spread(p, y)}
    return None


def squashed_floor(y: torch.Tensor) -> torch.Tensor:
    """Elementwise lowest value of BCE with logits on inputs s in [0, 1] (a sigmoid's outputs) against targets y:
    softplus(s) - y s is convex in s, lowest where sigmoid(s) = y, so at s = logit(y) clipped to [0, 1] (ln 2 at
    y <= 1/2, softplus(1) - 1 = 0.313 at y = 1)."""
    y = y.double().clamp(0.0, 1.0)
    s = torch.logit(y).nan_to_num(nan=0.0, posinf=1.0, neginf=0.0).clamp(0.0, 1.0)
    return torch.nn.functional.softplus(s) - y * s


def _step_floor(y: torch.Tensor, reduction: str) -> float:
    """The floor of one step's loss from the targets given to ``w.step(loss, y=y)``."""
    h = binary_entropy(y.detach().cpu())
    total = float(h.sum())
    return total / h.numel() if reduction == "mean" else total / len(h) if reduction == "per_example" else total


def _spread(p: torch.Tensor, y: torch.Tensor) -> float | None:
    """How much the predicted probabilities vary over the examples against how much the targets do: the mean over
    the output elements of their standard deviation across the rows, over the targets' (None for one row or
    targets alike in every row). Near 0: one output for all examples."""
    if p.dim() < 1 or len(p) < 2:
        return None
    wanted = float(y.reshape(len(y), -1).std(0).mean())
    return float(p.reshape(len(p), -1).std(0).mean()) / wanted if wanted > 1e-6 else None


def floor_is_a_bound(reads: list[dict | None]) -> bool:
    """An observed step read as a BCE plus another term (:func:`_with_other_term`; on some steps only where the
    term's weight is ramped up from 0, a KL annealed): the floor is the BCE's, a lower bound of the loss's lowest
    value, which the other term raises by an amount not known."""
    return any(r is not None and r.get("extra", 0.0) > 0 for r in reads)


def soft_binary_floors(reads: list[dict | None], ys: list[torch.Tensor], losses: list[float]) -> \
        float | list[float] | None:
    """The loss curve's floor when every observed step (two at least) read as one binary cross-entropy
    (:func:`read_binary`) on soft targets (their entropy above 0): each step's, from the targets given to
    ``w.step(loss, y=y)`` when every step gave them and they equal the targets read on the observed steps; else
    the observed steps' mean, an estimate of the data's mean entropy (the batches' differ little), capped at the
    lowest mean of a tenth of the run's consecutive losses (each step's loss is above its own floor). None
    otherwise, or when the loss went below that floor (by more than a tenth of it, over a tenth of the run): then it
    is not that loss."""
    if len(reads) < 2 or any(r is None for r in reads) or len({(r["on"], r["reduction"]) for r in reads}) != 1 or \
            reads[0]["on"] in ("sigmoid_logits", "swapped_logits"):  # a bug 'loop: loss' names: no floor read
        return None
    reduction = reads[0]["reduction"]
    if all(r["given"] for r in reads) and len(ys) == len(losses):
        floors = [_step_floor(y, reduction) for y in ys]
        if any(loss < f - 1e-4 * max(1.0, f) for loss, f in zip(losses, floors, strict=True)):
            return None
        return floors if max(floors) > 1e-6 else None
    floor = sum(r["floor"] for r in reads) / len(reads)
    k = max(1, len(losses) // 10)
    window = sum(losses[:k])
    lowest = window
    for i in range(k, len(losses)):  # the lowest mean of k consecutive losses
        window += losses[i] - losses[i - k]
        lowest = min(lowest, window)
    lowest /= k
    # a mean over a few batches' entropies misses the data's by a little: never above the loss's own lowest level
    return min(floor, lowest) if floor > 1e-6 and lowest >= 0.9 * floor else None
