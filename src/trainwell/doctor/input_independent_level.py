"""A training loss that stops at the best input-independent predictor's loss: the model learned nothing from its
inputs, read from the loop alone.

A model that ignores its inputs does best with one constant output (Karpathy, "A Recipe for Training Neural
Networks", 2019: the input-independent baseline). Its loss is known in closed form from the labels the watch saw:
under a mean cross-entropy on hard labels it is the entropy of the labels' class frequencies, -sum_c p_c ln p_c
(ln C for balanced classes), reached by predicting those frequencies; under a mean squared error it is the targets'
variance, reached by predicting their mean. A loss curve that has stopped there (its second half falling by under 2%
of that level or by no more than its noise, its last tenth near it) says that the model fits nothing that
depends on the input. What the loop shows tells two causes apart:

- **only biases learn**: every weight matrix is frozen (``requires_grad=False``; a slice such as
  ``list(model.parameters())[:-1]``, meant to freeze the first layers, freezes all but the output bias): the
  trained parameters shift the outputs by a constant, and the loss stops at the constant's (or, through the fixed
  random features, above it). :func:`constant_only` makes the frozen parameters' information a warning that names
  them; biases alone trained to a loss well below the constant's (BitFit's fine-tuning) are left alone.
- **every weight learns, at healthy steps**: the update/weight ratios lie around cs231n's healthy ~1e-3 (not the
  tiny steps of a rate far too low, nor the jumps of one far too high), the curve's second half falls by neither
  2% nor more than its noise (Adam's steps look healthy at a rate too low, whose curve falls on), two or more weight
  matrices learn (a network with a hidden layer, not a linear model on a task it cannot represent), the training
  loss sits at the labels' entropy and the validation loss never went below it by more than its own noise
  (labels noisy in part, or a task hard but learnable, go below it; a heavy dropout that raises the training loss
  alone leaves the validation loss low): the labels do not follow their inputs (:func:`unmatched_labels`: shuffled
  apart from them, two files in different row orders), or the inputs carry next to nothing about them.
"""

from __future__ import annotations

import math

import torch

from trainwell.doctor.curve_reading import _late_fall, loss_curve_features
from trainwell.doctor.memorizing_curve import mean_cross_entropy_classes
from trainwell.doctor.plateau_steps import middle_ratio
from trainwell.doctor.registration import _group_names
from trainwell.doctor.verdict import Verdict

NAME = "loop: inputs predict the labels"
#: the fewest watched steps whose curve is read
MIN_STEPS = 50
#: the curve's second half fell by under this share of the baseline (or within its noise): it stopped
STOPPED = 0.02
#: a training loss within these shares of the labels' entropy sits at it (a network memorizing some of its labels
#: takes it a little below over a short run; one whose outputs still carry their init's spread sits a little above)
AT_ENTROPY = (0.95, 1.05)
#: without a validation loss, the training loss must sit this close above the bottom of that band
UNVALIDATED_AT = 0.98
#: a validation loss never below this share of the labels' entropy learned nothing that carries over (a network
#: that memorizes labels its inputs do not determine lowers the training loss only)
VALIDATION_AT = 0.99
#: ... nor below it by this many of its own standard errors, read from the changes between consecutive validations
#: (von Neumann's mean square successive difference: a permutation whose class frequencies happen to line up with
#: the validation's lets the validation loss of a network memorizing noise wander a few percent below the entropy)
VALIDATION_SIGMAS = 3.0
#: the fewest validation losses whose successive differences estimate their standard error
MIN_VALIDATIONS = 3
#: with only biases learning, a loss above this share of the constant's is no better than the constant
NO_BETTER = 0.8
#: update/weight ratios of steps that move the weights (cs231n's healthy ~1e-3): above the band where a flat curve
#: reads as a rate far too low (watch_verdicts.FLAT_RATIO_BAND's bottom), within the monitors' band (their top)
HEALTHY_BAND = (1e-4, 1e-1)
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


def stopped_at(losses: list[float], level: float, steady: bool = False) -> dict | None:
    """The curve's numbers (:func:`~trainwell.doctor.curve_reading.loss_curve_features`) when it has stopped: its
    second half falls, along its least-squares line, by under :data:`STOPPED` of ``level`` or by less than two
    standard errors of that fall (per-step noise alone); ``steady``: by under both (a slow fall that stands out of
    the noise, as a rate too low draws it, has not stopped). None otherwise (too short, not finite, still
    falling)."""
    if len(losses) < MIN_STEPS or not all(math.isfinite(v) for v in losses) or not level > 0:
        return None
    features = loss_curve_features(losses)
    fall, error = _late_fall(losses[len(losses) // 2 :], features["noise_abs"])
    bounds = (STOPPED * level, 2 * error)
    return features if fall < (min(bounds) if steady else max(bounds)) else None


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


def validation_below(vals: list[float], level: float) -> bool:
    """Whether the validation losses ``vals`` went below ``level`` (the labels' entropy): their lowest under
    :data:`VALIDATION_AT` of it and, with :data:`MIN_VALIDATIONS` or more, under it by over :data:`VALIDATION_SIGMAS`
    standard errors of one validation loss, sqrt(mean((v[i+1] - v[i])^2) / 2) (von Neumann et al., "The mean square
    successive difference", Ann. Math. Stat. 1941: the spread of a series about a level, or a slow trend); a
    validation loss that is not finite counts as below (something else is wrong)."""
    if not all(math.isfinite(v) for v in vals):
        return True
    lowest = min(vals)
    if lowest >= VALIDATION_AT * level:
        return False
    if len(vals) < MIN_VALIDATIONS:
        return True
    sigma = math.sqrt(sum((b - a) ** 2 for a, b in zip(vals[:-1], vals[1:], strict=True)) / (2 * (len(vals) - 1)))
    return level - lowest > VALIDATION_SIGMAS * sigma


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


def unmatched_labels(w, ratios: list[float]) -> Verdict | None:
    """``loop: inputs predict the labels``: a warning when the training loss of a mean cross-entropy stopped at the
    labels' entropy (within :data:`AT_ENTROPY` of it, or from :data:`UNVALIDATED_AT` up without a validation loss),
    the validation loss (where there is one) never went below it (:func:`validation_below`), two or more weight
    matrices learn and the observed steps' middle update/weight ratio lies in :data:`HEALTHY_BAND`; None otherwise.
    ``ratios``: the observed steps' update/weight ratios, sorted
    (:func:`~trainwell.doctor.plateau_steps.observed_ratios`)."""
    p = w.probe
    if p.game is not None or any(s["form"] == "signed_weights" for s in p.steps):
        return None
    baseline = baseline_of(w)
    if baseline is None or baseline[0] != "the labels' entropy":
        return None
    h = baseline[1]
    curve = stopped_at(w.losses, h, steady=True)
    vals = [h_["val_loss"] for h_ in w._history(None)]
    low = UNVALIDATED_AT if not vals else AT_ENTROPY[0]
    if curve is None or not low * h <= curve["tail"] <= AT_ENTROPY[1] * h:
        return None
    if vals and validation_below(vals, h):
        return None
    weights = [n for n in _learning(p) if p.named[n].dim() >= 2]
    middle = middle_ratio(ratios)
    if len(weights) < 2 or middle is None or not HEALTHY_BAND[0] <= middle <= HEALTHY_BAND[1]:
        return None
    seen = f"; the validation loss never went below {min(vals):.4g}" if vals else ""
    return Verdict(NAME, "warn", f"the training loss stayed at the input-independent baseline: {curve['tail']:.4g} "
                   f"over the last {curve['k']} steps vs {h:.4g}, the entropy of the labels seen (the loss of "
                   f"predicting their class frequencies whatever the input){seen}; {len(weights)} weight matrices "
                   f"learn at update/weight {middle:.2g} (healthy ~1e-3)",
                   "a loss below the input-independent baseline",
                   "the network trains at healthy steps yet learned nothing from its inputs: labels may not match the "
                   "inputs (shuffled separately? x and y shuffled with two permutations, two files in different row "
                   "orders, a label column misread), or the inputs carry next to nothing about them. Check a few "
                   "(input, label) pairs by eye; doctor.check's input-independent baseline tells whether the inputs "
                   "predict the labels at all")
