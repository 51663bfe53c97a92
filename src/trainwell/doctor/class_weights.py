"""Class weights turned the wrong way round: ``nn.CrossEntropyLoss(weight=counts / counts.sum())`` weighs the
common classes most and the rare ones least, the opposite of what class weights are for. Balanced weights are
inverse to the class's frequency, ``N / (C * count)`` (King and Zeng 2001; scikit-learn's
``compute_class_weight("balanced")``).

The weights are read from the loss's gradient, not from the loss object: each observed step's per-row weights
a_i = w_{y_i} / sum_j w_{y_j} grouped by label (:func:`~trainwell.doctor.loss_form.label_weights`), and the
label frequencies from the targets given to ``w.step(loss, y=y)``."""

from __future__ import annotations

import torch

from trainwell.doctor.verdict import Verdict

NAME = "loop: class weights"
#: the verdict's value starts with this: it explains the classes the model favours, not the loss curve
GROW = "class weights grow with the class's frequency"
MIN_SPREAD = 2.0  # largest / smallest weight (and count) before the order of the weights is judged
MIN_RANK_CORRELATION = 0.9


def _ranks(v: torch.Tensor) -> torch.Tensor:
    return v.argsort().argsort().double()


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of ``a`` and ``b`` (0 when either is constant)."""
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / den if den > 0 else 0.0


def read_weights(steps: list[dict], labels: torch.Tensor) -> torch.Tensor | None:
    """Per label in ``labels``, its weight relative to the others (geometric mean 1), averaged in log over the
    observed steps whose batch held every one of them; None when no step did."""
    logs = []
    for s in steps:
        w = s.get("label_weights")
        if w is None or int(labels.max()) >= len(w):
            continue
        w = w[labels].double()
        if bool(torch.isfinite(w).all()) and bool((w > 0).all()):
            logs.append(w.log() - w.log().mean())
    return torch.stack(logs).mean(0).exp() if logs else None


def inverted_weights(steps: list[dict], ys: list[torch.Tensor]) -> Verdict | None:
    """A warn when the loss's per-label weights rise with the label's frequency in the targets (3 labels or more,
    rank correlation >= 0.9, weights and counts each spread over 2x); None otherwise (no class labels, equal
    weights, balanced weights)."""
    if not ys or any(y.is_floating_point() or y.is_complex() for y in ys):
        return None
    flat = torch.cat([y.reshape(-1).long() for y in ys])
    flat = flat[flat >= 0]  # ignore_index (-100)
    if flat.numel() == 0:
        return None
    counts = torch.bincount(flat).double()
    labels = (counts > 0).nonzero().squeeze(1)
    if len(labels) < 3:
        return None
    weights = read_weights(steps, labels)
    if weights is None:
        return None
    counts = counts[labels]
    w_spread, c_spread = float(weights.max() / weights.min()), float(counts.max() / counts.min())
    rho = rank_correlation(weights, counts)
    if w_spread <= MIN_SPREAD or c_spread <= MIN_SPREAD or rho < MIN_RANK_CORRELATION:
        return None
    lw, lc = weights.log() - weights.log().mean(), counts.log() - counts.log().mean()
    slope = float((lw * lc).sum() / (lc * lc).sum())
    law = "w ∝ count" if abs(slope - 1) < 0.3 else f"w ∝ count^{slope:.2g}"
    rare, common = int(counts.argmin()), int(counts.argmax())
    return Verdict(NAME, "warn", f"{GROW} ({law}): inverted? class {int(labels[rare])} ({int(counts[rare])} "
                   f"targets) weighs {float(weights[common] / weights[rare]):.3g}x less than class "
                   f"{int(labels[common])} ({int(counts[common])} targets)",
                   "weights that fall with the class's frequency (or equal ones)",
                   "balanced weights are N / (C * count): weight = counts.sum() / (len(counts) * counts), not "
                   "counts / counts.sum()")
