"""A training loss that stops at the best input-independent predictor's loss: the model learned nothing from its
inputs, read from the loop alone.

A model that ignores its inputs does best with one constant output (Karpathy, "A Recipe for Training Neural
Networks", 2019: the input-independent baseline). Its loss is known in closed form from the labels the watch saw:
under a mean cross-entropy on hard labels it is the entropy of the labels' class frequencies, -sum_c p_c ln p_c
(ln C for balanced classes), reached by predicting those frequencies; under a mean squared error it is the targets'
variance, reached by predicting their mean. A loss curve that has stopped there (its second half falling by under 2%
of that level, or by no more than its noise, and its last tenth near it) says that the model fits nothing that
depends on the input. What the loop shows names the cause:

- **only biases learn**: every weight matrix is frozen (``requires_grad=False``; a slice such as
  ``list(model.parameters())[:-1]``, meant to freeze the first layers, freezes all but the output bias): the
  trained parameters shift the outputs by a constant, and the loss stops at the constant's (or, through the fixed
  random features, above it). :func:`constant_only` makes the frozen parameters' information a warning that names
  them; biases alone trained to a loss well below the constant's (BitFit's fine-tuning) are left alone.
"""

from __future__ import annotations

import math

import torch

from trainwell.doctor.curve_reading import _late_fall, loss_curve_features
from trainwell.doctor.memorizing_curve import mean_cross_entropy_classes
from trainwell.doctor.registration import _group_names
from trainwell.doctor.verdict import Verdict

#: the fewest watched steps whose curve is read
MIN_STEPS = 50
#: the curve's second half fell by under this share of the baseline (or within its noise): it stopped
STOPPED = 0.02
#: with only biases learning, a loss above this share of the constant's is no better than the constant
NO_BETTER = 0.8
#: labels needed to estimate their entropy or variance
MIN_LABELS = 64


def label_entropy(ys: list[torch.Tensor], classes: int) -> float | None:
    """The cross-entropy of the best input-independent prediction of these hard labels (their class frequencies):
    their entropy in nats; labels outside 0..C-1 (an ``ignore_index`` such as -100) are left out. None for fewer
    than :data:`MIN_LABELS` labels, or for labels that are not integers."""
    if not ys or any(y.is_floating_point() or y.is_complex() or y.dtype == torch.bool for y in ys):
        return None
    flat = torch.cat([y.reshape(-1).long() for y in ys])
    flat = flat[(flat >= 0) & (flat < classes)]
    if len(flat) < MIN_LABELS:
        return None
    p = torch.bincount(flat, minlength=classes).double() / len(flat)
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def target_variance(ys: list[torch.Tensor]) -> float | None:
    """The mean squared error of the best input-independent prediction of these regression targets (their mean):
    their variance over the examples, averaged over the output columns. None for fewer than :data:`MIN_LABELS`
    rows, targets that are not floating point or rows of different shapes."""
    if not ys or any(not y.is_floating_point() or y.dim() == 0 or y.shape[1:] != ys[0].shape[1:] for y in ys):
        return None
    rows = torch.cat([y.detach().double() for y in ys])
    if len(rows) < MIN_LABELS or not bool(torch.isfinite(rows).all()):
        return None
    return float(rows.var(0, unbiased=False).mean())


def stopped_at(losses: list[float], level: float) -> dict | None:
    """The curve's numbers (:func:`~trainwell.doctor.curve_reading.loss_curve_features`) when it has stopped: its
    second half falls, along its least-squares line, by under :data:`STOPPED` of ``level`` or by less than two
    standard errors of that fall (per-step noise alone); None otherwise (too short, not finite, still falling)."""
    if len(losses) < MIN_STEPS or not all(math.isfinite(v) for v in losses) or not level > 0:
        return None
    features = loss_curve_features(losses)
    fall, error = _late_fall(losses[len(losses) // 2 :], features["noise_abs"])
    return features if fall < max(STOPPED * level, 2 * error) else None


def baseline_of(w) -> tuple[str, float] | None:
    """What the best input-independent prediction of the watched labels is and its loss: ("the labels' entropy",
    H) under a mean cross-entropy over C classes on integer labels, ("the targets' variance", V) under a mean
    squared error over the output elements (read from its value against its gradient on two thirds of the observed
    steps); None for another loss or labels not seen."""
    p = w.probe
    ys = [y.cpu() for y in w._ys]
    classes = mean_cross_entropy_classes(p.steps)
    if classes is not None and classes >= 2:
        h = label_entropy(ys, classes)
        return None if h is None else ("the labels' entropy", h)
    reads = p.reductions
    means = [r for r in reads if r is not None and r.kind == "mean" and r.loss == "MSE"]
    if len(means) < 2 or 3 * len(means) < 2 * len(reads):
        return None
    v = target_variance(ys)
    return None if v is None else ("the targets' variance", v)


def _learning(p) -> list[str]:
    """The parameters that learn: they require a gradient, received one on an observed step and an optimizer
    holds them."""
    held = p.held_now()
    return [n for n, t in p.named.items() if t.requires_grad and n in p.received and id(t) in held]


def constant_only(w, reach: Verdict) -> Verdict:
    """``reach`` (``loop: every trainable parameter learns``) made a warning that names the frozen weights when
    only biases learn (every parameter that learns is a module's ``bias``) and the loss stopped no better than the
    best constant output (above :data:`NO_BETTER` of its loss); ``reach`` as it is otherwise."""
    p = w.probe
    if reach.status != "info" or not p.frozen or p.game is not None:
        return reach
    learning = _learning(p)
    if not learning or any(n.rpartition(".")[2] != "bias" for n in learning):
        return reach
    baseline = baseline_of(w)
    if baseline is None:
        return reach
    what, level = baseline
    curve = stopped_at(w.losses, level)
    if curve is None or curve["tail"] < NO_BETTER * level:
        return reach
    total = sum(t.numel() for t in p.named.values())
    trained = sum(p.named[n].numel() for n in learning)
    frozen = sum(p.named[n].numel() for n in p.frozen)
    value = (f"frozen: {_group_names(p.frozen)} ({frozen:,} of {total:,} parameters): only {_group_names(learning)} "
             f"({trained:,}) learn{'s' if len(learning) == 1 else ''}: biases, which shift what the frozen weights "
             f"compute; the training loss stopped at {curve['tail']:.4g}, where one constant output for all examples "
             f"gives {level:.4g} ({what})")
    return Verdict(reach.check, "warn", value, "the weights that map the inputs to the outputs learn",
                   "every weight that maps the inputs to the outputs is frozen (requires_grad=False): a slice such as "
                   "list(model.parameters())[:-1] freezes all but the output bias. Freeze only the layers meant to "
                   "stay fixed, by name (model.layers.parameters()), and give the optimizer the rest")

