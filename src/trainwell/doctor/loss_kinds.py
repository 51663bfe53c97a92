"""What a loss *is* (cross-entropy, NLL, hinge, BCE with logits, a regression loss, or unknown) and the loss an
uninformative model gives with it (cs231n: ln C for softmax cross-entropy over C classes)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor import outputs as O

_CLASSIFY = {F.cross_entropy: "cross_entropy", F.nll_loss: "nll", F.multi_margin_loss: "hinge",
             F.binary_cross_entropy_with_logits: "bce_logits", F.binary_cross_entropy: "bce", F.mse_loss: "mse",
             F.l1_loss: "l1", F.smooth_l1_loss: "smooth_l1", F.huber_loss: "huber"}


_MODULES = ((nn.CrossEntropyLoss, "cross_entropy"), (nn.NLLLoss, "nll"), (nn.MultiMarginLoss, "hinge"),
            (nn.BCEWithLogitsLoss, "bce_logits"), (nn.BCELoss, "bce"), (nn.MSELoss, "mse"), (nn.L1Loss, "l1"),
            (nn.SmoothL1Loss, "smooth_l1"), (nn.HuberLoss, "huber"))


_REGRESSION = ("mse", "l1", "smooth_l1", "huber", "mse_onehot")


def loss_kind(loss_fn: Callable) -> str:
    """What a loss *is*: 'cross_entropy', 'nll', 'hinge', 'bce_logits', 'bce' (on probabilities), 'mse',
    'mse_onehot', 'l1', 'smooth_l1', 'huber', or 'unknown' (a lambda or custom function: nothing can be expected of
    it). Recognizes ``torch.nn.functional`` losses, their ``nn.Module`` classes (also subclasses) and
    ``functools.partial``."""
    while isinstance(loss_fn, functools.partial):
        loss_fn = loss_fn.func
    for cls, kind in _MODULES:
        if isinstance(loss_fn, cls):
            return kind
    if getattr(loss_fn, "__name__", "") == "_mse_onehot" and "trainwell" in getattr(loss_fn, "__module__", ""):
        return "mse_onehot"
    try:
        return _CLASSIFY.get(loss_fn, "unknown")
    except TypeError:  # an unhashable callable
        return "unknown"


def reads_class_scores(loss_fn: Callable, out, y: torch.Tensor) -> bool:
    """Whether ``loss_fn`` reads the outputs as class scores, so that an accuracy means something: a known
    classification loss, or an unknown one that gives ln C (as a mean, or summed over the examples) on uniform
    logits, as a hand-written cross-entropy does; not a metric-learning, ordinal or quantile loss. False for
    several targets (a tuple or dict): which of them the class scores belong to is not known."""
    if not isinstance(y, torch.Tensor):
        return False
    kind = loss_kind(loss_fn)
    if kind in ("cross_entropy", "nll", "hinge", "mse_onehot", "bce_logits"):
        return True
    scores = O.logits(out)
    if kind != "unknown" or scores is None or scores.dim() < 2 or scores.shape[1] < 2:
        return False
    try:
        with torch.no_grad():
            value = loss_fn(O.replace_logits(out, torch.zeros_like(scores)), y)
    except Exception:  # noqa: BLE001 - a loss that cannot be probed so is not read as a classifier's
        return False
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        return False
    ln_c, v = math.log(scores.shape[1]), float(value)
    return min(abs(v - ln_c), abs(v / max(len(y), 1) - ln_c)) <= 1e-3 * ln_c


def _loss_name(loss_fn: Callable) -> str:
    return loss_kind(loss_fn)


def _scalar(loss: torch.Tensor) -> float:
    """A loss value as a float; a per-example loss (reduction='none') is averaged. Detached first: a loss that
    carries a graph (one computed through another model's parameters) gives its value without torch's warning."""
    loss = loss.detach()
    return float(loss.mean()) if loss.dim() else float(loss)


def uniform_scores(loss_fn: Callable, scores: torch.Tensor) -> torch.Tensor:
    """What an uninformative model outputs for ``loss_fn``: uniform log-probabilities (-ln C everywhere) for NLL,
    which reads its input as log-probabilities (all-zero inputs would give it a loss of exactly 0), probability 0.5
    for binary cross-entropy on probabilities, and uniform logits (zeros) for every other loss."""
    c = scores.shape[1] if scores.dim() > 1 else 1
    kind = loss_kind(loss_fn)
    if kind == "bce":
        return torch.full_like(scores, 0.5)
    return torch.full_like(scores, -math.log(c)) if kind == "nll" else torch.zeros_like(scores)


def expected_initial_loss(loss_fn: Callable, out: torch.Tensor, y: torch.Tensor) -> tuple[float, str] | None:
    """The loss an uninformative model gives, measured with the user's own loss object on uniform outputs (so
    reduction, class weights, margins and label smoothing are all accounted for), with its formula; None for an
    unknown loss.

    Classification (cs231n): uniform logits (zeros) give ln C for softmax cross-entropy, (C - 1)/C for torch's
    multiclass hinge (C - 1 when summed over classes), ln 2 for binary cross-entropy with logits; uniform
    log-probabilities (-ln C) give ln C for NLL; probabilities 0.5 give ln 2 for binary cross-entropy, whatever the
    targets (soft ones too: -(y ln 0.5 + (1 - y) ln 0.5) = ln 2). Regression: the loss of a zero output (a model
    whose outputs are near zero at init). None for several targets (a tuple or dict): no one expectation for their sum.
    """
    if not isinstance(y, torch.Tensor):
        return None
    kind = loss_kind(loss_fn)
    scores = O.logits(out)
    if scores is None:
        return None
    if kind == "unknown":
        return _cross_entropy_like(loss_fn, out, scores, y) or _bce_with_logits_like(loss_fn, out, scores, y)
    c = scores.shape[1] if scores.dim() > 1 else 1
    with torch.no_grad():
        value = _scalar(loss_fn(O.replace_logits(out, uniform_scores(loss_fn, scores)), y))
    formula = {"cross_entropy": f"ln C = ln {c}", "nll": f"-ln(1/C) = ln {c}",
               "hinge": f"(C-1)/C = {c - 1}/{c} (C-1 summed over classes)", "bce_logits": "ln 2 per output",
               "bce": "ln 2 per output (probabilities 0.5)",
               }.get(kind, f"{kind} of a zero output")
    return value, f"{formula}, measured on uniform outputs"


def _at_zero_logits(loss_fn: Callable, out, scores: torch.Tensor, y: torch.Tensor) -> float | None:
    """The user's loss on the model's outputs with the scores set to 0 (uniform logits); None when the loss
    cannot take them (a loss that cannot is simply not recognised)."""
    try:
        with torch.no_grad():
            return _scalar(loss_fn(O.replace_logits(out, torch.zeros_like(scores)), y))
    except Exception:  # noqa: BLE001 - any error of the user's loss on these outputs
        return None


def _cross_entropy_like(loss_fn: Callable, out, scores: torch.Tensor, y: torch.Tensor) -> tuple[float, str] | None:
    """A custom loss (``lambda o, t: F.cross_entropy(o[0], t)``) recognised by what it does: on uniform logits it
    gives ln C (C the width of the class axis, 1 or last), as cross-entropy does, or (a focal loss, a Brier score
    on the softmax) a positive value with cross-entropy's gradient there (:func:`softmax_gradient_at_uniform`);
    None otherwise."""
    if y.is_floating_point() or scores.dim() < 2:
        return None
    value = _at_zero_logits(loss_fn, out, scores, y)
    if value is None:
        return None
    for c in dict.fromkeys((scores.shape[1], scores.shape[-1])):
        if c > 1 and abs(value - math.log(c)) <= 1e-4 * math.log(c):
            return value, f"ln C = ln {c} (your loss gives it on uniform logits: cross-entropy-like)"
    if value > 0 and softmax_gradient_at_uniform(loss_fn, out, scores, y):
        return value, ("your loss on uniform logits (a reweighted cross-entropy: its gradient there is "
                       "cross-entropy's, as a focal loss's or a Brier score's)")
    return None


def _bce_with_logits_like(loss_fn: Callable, out, scores: torch.Tensor, y: torch.Tensor) -> \
        tuple[float, str] | None:
    """A custom loss around binary cross-entropy with logits (``lambda o, t: F.binary_cross_entropy_with_logits(o,
    t)``) recognised by what it does: on zero logits it gives ln 2 per output element, softplus(0) - y * 0, whatever
    the targets in [0, 1] (hard or soft), one per output; as a mean over the elements, a sum over each
    example's elements averaged over the batch, or a sum. None otherwise."""
    if not y.is_floating_point() or y.numel() != scores.numel() or scores.numel() < 1 or \
            not bool(((y >= 0) & (y <= 1)).all()):
        return None
    value = _at_zero_logits(loss_fn, out, scores, y)
    if value is None:
        return None
    n, rows = scores.numel(), len(scores) if scores.dim() else 1
    for count, how in ((1, "per output"), (n / rows, "per output, summed over each example's outputs"),
                       (n, "per output, summed over all outputs")):
        if abs(value - count * math.log(2)) <= 1e-4 * count * math.log(2):
            return value, f"ln 2 {how} (your loss gives it on zero logits, as BCE with logits does)"
    return None


def loss_kind_read(loss_fn: Callable, out, y: torch.Tensor) -> str:
    """:func:`loss_kind`, with a custom loss recognised by what it gives on uniform outputs
    (:func:`expected_initial_loss`): 'bce_logits' when it gives ln 2 per output element on zero logits against
    floating-point targets, 'cross_entropy' when it behaves like cross-entropy, else 'unknown'."""
    kind = loss_kind(loss_fn)
    scores = O.logits(out)
    if kind != "unknown" or not isinstance(y, torch.Tensor) or scores is None:
        return kind
    if _cross_entropy_like(loss_fn, out, scores, y) is not None:
        return "cross_entropy"
    return "bce_logits" if _bce_with_logits_like(loss_fn, out, scores, y) is not None else "unknown"


def softmax_gradient_at_uniform(loss_fn: Callable, out, scores: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether the loss's gradient on uniform (zero) logits of shape (N, C) with labels (N,) in [0, C) is
    cross-entropy's, ``a_i (1/C - e_{y_i})``, with weights a_i > 0 equal within each label: a cross-entropy
    reshaped by a factor that is the same wherever the outputs are uniform (a focal term (1 - p)^gamma, class
    weights alpha_y, a Brier score's squared error on the softmax)."""
    if scores.dim() != 2 or y.dim() != 1 or len(y) != len(scores) or scores.shape[1] < 2 or \
            not bool(((y >= 0) & (y < scores.shape[1])).all()):
        return False
    z = torch.zeros_like(scores.detach(), requires_grad=True)
    try:
        with torch.enable_grad():
            value = loss_fn(O.replace_logits(out, z), y)
            value = value.mean() if value.dim() else value
            (g,) = torch.autograd.grad(value, z, allow_unused=True)
    except Exception:  # noqa: BLE001 - a loss that cannot be probed so is simply not recognised
        return False
    if g is None or not bool(torch.isfinite(g).all()) or float(g.abs().max()) == 0.0:
        return False
    g = g.double()
    c = scores.shape[1]
    onehot = torch.zeros_like(g).scatter_(1, y[:, None], 1.0)
    a = -g.gather(1, y[:, None]).squeeze(1) * c / (c - 1)
    resid = float((g - a[:, None] * (1.0 / c - onehot)).norm() / g.norm())
    if resid > 1e-3 or not bool((a > 0).all()):
        return False
    return all(float(w.max() - w.min()) <= 1e-3 * float(w.max()) for w in (a[y == k] for k in y.unique()))
