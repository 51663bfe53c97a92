"""Pre-flight check: the loss at initialization vs what an uninformative model gives (cs231n)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.embedding_scale import embedding_advice
from trainwell.doctor.fitting import _normalization
from trainwell.doctor.forward import (
    _outputs,
    _suspect_layer,
    _training_forward,
    first_nonfinite,
    input_scale,
    trainable_layer,
)
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.loss_kinds import _REGRESSION, _scalar, expected_initial_loss, loss_kind, loss_kind_read
from trainwell.doctor.normalized_scores import normalized_after
from trainwell.doctor.targets import chosen_output_regression, constant_loss, far_from_unit
from trainwell.doctor.trained_start import ADVICE as TRAINED_ADVICE
from trainwell.doctor.trained_start import predicts_labels
from trainwell.doctor.verdict import Verdict


def _last_layer_advice(model: nn.Module, x: torch.Tensor | Inputs, scores: torch.Tensor | None = None) -> str:
    """What to change when the scores start too large: the layer that produces them, started with small weights
    (cs231n: small random numbers for the last layer), whatever the hidden layers' scheme. He's sqrt(2) gain (and
    Xavier's with few outputs, sqrt(2 fan_in / (fan_in + fan_out))) is for layers followed by a ReLU; on the last
    layer, behind ReLUs and max-pooling that raise the signal's scale, it gives scores of std > 1 and a loss far
    above ln C. Embedding tables with no weighted layer after them (a matrix-factorization recommender) are named
    with their N(0, 1) default init (:mod:`~trainwell.doctor.embedding_scale`). Frozen layers (a pretrained
    backbone under a new head) are never told to change their init."""
    tables = embedding_advice(model, x, scores)
    if tables is not None:
        return tables
    rows = _outputs(model, x)
    if not rows or not isinstance(rows[-1][2], torch.Tensor) or not rows[-1][2].is_floating_point():
        return f"{_suspect_layer(model, x)}; shrink the last layer's init scale (e.g. its weights x 0.1), or use " \
               "Xavier/He init"
    name, _, last = rows[-1]
    spread = float(last.double().std())
    if scores is not None and scores.is_floating_point() and scores.numel() > 1:
        final = float(scores.double().std())
        if final > 3 * spread:  # the scale is made after the last weighted layer, by the model's own code
            return (f"the scores' std is {final:.3g}, {final / max(spread, 1e-12):.3g}x that of the last layer "
                    f"'{name}' ({spread:.3g}): something after it multiplies them (a sum over neighbours or "
                    "positions without normalization, e.g. a graph's adjacency without D^-1/2 (A + I) D^-1/2; a "
                    "missing 1/sqrt(d) or mean; or a scale by design, such as a cosine classifier's s = 30, whose "
                    "loss then starts above ln C)")
    head = (f"the last layer '{name}' gives scores of std {spread:.3g}: initialize it with small weights "
            "(nn.init.normal_(weight, std=0.01), or its weights x 0.1 after init) whatever the hidden layers' scheme")
    hidden = list(dict.fromkeys(n for n, _, _ in rows[:-1] if n != name))
    frozen = [n for n in hidden if not trainable_layer(model, n)]
    if frozen and len(frozen) == len(hidden):  # a pretrained, frozen backbone under a new head
        return (f"{head}; the layers before it are frozen ({', '.join(frozen[:3])}{', ...' if len(frozen) > 3 else ''}"
                "): re-initializing them would discard what they learned; if the features they give are large, "
                "normalize them before the head (e.g. an nn.LayerNorm on the features)")
    return (f"{_suspect_layer(model, x, trainable=True)}; {head}; if every layer amplifies (see variance "
            "propagation), use Xavier/He for the hidden ones" + (" that train" if frozen else ""))


def _frozen_head(model: nn.Module, x: torch.Tensor | Inputs) -> tuple[str, float] | None:
    """(name, output std) of the last weighted layer when it is frozen and other parameters train: a pretrained
    head under adapters (LoRA's low-rank updates beside each frozen layer, Hu et al. 2021) or under fine-tuned
    layers. Its scores' scale was set by its training, not by an init the user could shrink."""
    rows = _outputs(model, x)
    if not rows or not isinstance(rows[-1][2], torch.Tensor) or not rows[-1][2].is_floating_point():
        return None
    name = rows[-1][0]
    if trainable_layer(model, name) or not any(p.requires_grad for p in model.parameters()):
        return None
    return name, float(rows[-1][2].double().std())


def plain_cross_entropy(scores: torch.Tensor | None, y: torch.Tensor, ignore_index: int = -100) -> \
        tuple[float, int] | None:
    """(softmax cross-entropy of ``scores`` against the labels ``y``, averaged over the labels in [0, C), and C)
    with the classes on dim 1 of (N, C, ...) scores or last of (N, ..., C) ones as the labels' shape says; None when
    the shapes do not say or no label is in range."""
    if scores is None or not scores.is_floating_point() or y.is_floating_point() or scores.dim() < 2:
        return None
    if y.shape == scores.shape[:1] + scores.shape[2:]:
        rows = scores.movedim(1, -1).reshape(-1, scores.shape[1])
    elif y.shape == scores.shape[:-1]:
        rows = scores.reshape(-1, scores.shape[-1])
    else:
        return None
    labels = y.reshape(-1)
    keep = (labels >= 0) & (labels < rows.shape[1]) & (labels != ignore_index)
    if rows.shape[1] < 2 or not bool(keep.any()):
        return None
    return float(F.cross_entropy(rows[keep].double(), labels[keep])), rows.shape[1]


def _judged(kind: str, loss: float, expected: float, formula: str, scores: torch.Tensor | None, y: torch.Tensor,
            loss_fn: Callable) -> tuple[str, float, str]:
    """(status, ratio, expected text) of the initial ``loss`` against the uninformative model's ``expected``."""
    ratio = loss / max(expected, 1e-12)
    if kind in _REGRESSION:  # lower than a zero output is fine; far above means large initial outputs
        status = "pass" if ratio <= 2.0 else "warn" if ratio <= 10.0 else "fail"
        return status, ratio, f"<= 2 x {formula} = {expected:.4f}"
    expected_text = f"{formula} = {expected:.4f}"
    plain = plain_cross_entropy(scores, y, getattr(loss_fn, "ignore_index", -100)) \
        if kind == "cross_entropy" and isinstance(y, torch.Tensor) else None
    if plain is not None and abs(expected - math.log(plain[1])) > 1e-3 * math.log(plain[1]):
        # a reweighted cross-entropy (a focal term, class weights that do not average out): its value moves further
        # from the uniform one than cross-entropy's for the same outputs (the focal loss at p = 1/2 changes 2.4x as
        # fast, relatively), so the outputs' distance from uniform is read with plain cross-entropy on them
        ratio = plain[0] / math.log(plain[1])
        expected_text += (f"; outputs near uniform: plain cross-entropy on them {plain[0]:.4g} vs ln {plain[1]} = "
                          f"{math.log(plain[1]):.4f}")
    upper = 1.25
    if kind == "cross_entropy":  # logits of std s add about s^2 / 2 to ln C whatever C: a std up to 1 is near-uniform
        classes = plain[1] if plain is not None else math.exp(expected)
        upper = max(upper, 1.0 + UNIFORM_EXCESS / math.log(max(classes, 2.0)))
    return "pass" if 0.8 <= ratio <= upper else "warn" if 0.5 <= ratio <= 2.0 else "fail", ratio, expected_text


UNIFORM_EXCESS = 0.5
"""Nats above ln C that initial logits of std 1 add to softmax cross-entropy (E[logsumexp z] = ln C + s^2 / 2 for
many classes, less for few): within it the outputs pass as near-uniform also for 2 or 3 classes, where 25% of ln C
(0.17 and 0.27 nats) would call a std of 0.6-0.7 far from uniform."""


def _centred_part_loss(loss_fn: Callable, out, y) -> float | None:
    """The loss with the output that regresses the targets far from zero mean and unit scale (the one output of
    their shape) set to their mean, the others as they are: the offset's share of the initial loss. A head of
    boxes normalized to [0, 1] beside a classifier's scores moves the sum little when centred, raw pixel boxes
    move it most. None when no one output matches them."""
    if not isinstance(out, (tuple, list)):
        return None
    far = next((t for _, t in y.items() if far_from_unit(t)), None)
    if far is None:
        return None
    matches = [i for i, o in enumerate(out) if isinstance(o, torch.Tensor) and o.shape == far.shape]
    if len(matches) != 1:
        return None
    centred = list(out)
    centred[matches[0]] = far.mean(0, keepdim=True).to(out[matches[0]].dtype).expand_as(out[matches[0]])
    try:
        value = _scalar(loss_fn(type(out)(centred) if isinstance(out, tuple) else centred, y))
    except Exception:  # noqa: BLE001 - a loss that refuses the stand-in output: no reading
        return None
    return value if math.isfinite(value) else None


def _scale_not_an_init(model: nn.Module, x: torch.Tensor | Inputs, kind: str, loss: float, expected_text: str,
                       scores: torch.Tensor | None) -> Verdict | None:
    """Information, not a warning, for a first loss above the uninformative one whose scores' scale no init of the
    user's set: a frozen last layer under parts that train (:func:`_frozen_head`), or a cosine classifier's scale
    s (:func:`~trainwell.doctor.normalized_scores.normalized_after`). None otherwise."""
    frozen = _frozen_head(model, x)
    if frozen is not None:
        return Verdict("initial loss", "info", loss, expected_text,
                       f"the last layer '{frozen[0]}' is frozen while other parameters train: its scores' std "
                       f"{frozen[1]:.3g} is what its earlier training made, not an init's, and a first loss above "
                       "the uninformative one says its classes do not match these labels yet (the parts that train, "
                       "adapters or new layers, learn that); if that layer is new, unfreeze it "
                       "(requires_grad_(True), and add it to the optimizer)")
    layer = normalized_after(model, x) if kind == "cross_entropy" else None
    if layer is not None:  # a cosine classifier: s * cos(theta) starts above ln C by design
        return Verdict("initial loss", "info", loss, expected_text,
                       f"the scores are normalized after the last layer '{layer}' (its output doubled leaves "
                       f"them unchanged: a cosine classifier, s * cos(theta)), so their std "
                       f"{float(scores.double().std()):.3g} is set by the model's own scale s, not by an init: "
                       "a first loss above ln C is by design (CosFace, ArcFace); if training stalls, lower s")
    return None


@torch.no_grad()
def initial_loss(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable = F.cross_entropy,
                 num_classes: int | None = None) -> Verdict:
    """Loss at initialization vs what an uninformative model gives (:func:`expected_initial_loss`): ln C for
    softmax cross-entropy, (C - 1)/C for torch's multiclass hinge, ln 2 for binary cross-entropy; a regression
    loss must not be far above that of a zero output, and is also judged against the best constant predictor
    (the targets' mean for MSE, their median for L1): far above it because the targets sit far from zero mean
    (mean(y)^2 >> var(y), :mod:`~trainwell.doctor.targets`) is a warning naming their scale. A reweighted
    cross-entropy (a focal loss, whose value on uniform logits is not ln C) is expected at that value, and its
    outputs are judged near-uniform by plain cross-entropy on them (ln C): the reweighting moves the loss further
    for the same outputs, more so when one class dominates the labels. Cross-entropy on
    outputs that are already probabilities (a Softmax last layer: its initial loss is ln C too) is a warning. An
    unknown loss is "skipped", never a pass."""
    was = model.training
    _training_forward(model)
    try:
        out = call(model, x)
        loss = _scalar(loss_fn(out, y))
    finally:
        model.train(was)
    found = expected_initial_loss(loss_fn, out, y) if math.isfinite(loss) else None
    kind = loss_kind_read(loss_fn, out, y) if found is not None else loss_kind(loss_fn)
    if not math.isfinite(loss):
        culprit = first_nonfinite(_training_forward(model), x)
        model.train(was)
        return Verdict("initial loss", "fail", loss, "a finite loss",
                       f"the loss at init is {loss}: {culprit}" if culprit else
                       f"the loss at init is {loss}: {_suspect_layer(model, x)}; check the inputs for NaN/Inf and "
                       f"the loss for log(0)")
    if kind == "unknown" and loss < 0 and expected_initial_loss(lambda o, t: -loss_fn(o, t), out, y) is not None:
        return Verdict("initial loss", "fail", round(loss, 4), "a cross-entropy's ln C > 0",
                       "the loss is minus a cross-entropy (it gives -ln C on uniform logits): training maximizes the "
                       "cross-entropy and drives the right class down; a minus sign is missing in the hand-written "
                       "loss (-(target * log_softmax(z)).sum(1).mean())")
    if kind == "unknown" and not isinstance(y, torch.Tensor):  # several targets: no one expectation for the sum
        targets = far_from_unit(y)
        if targets and chosen_output_regression(loss_fn, out, y):
            return Verdict("initial loss", "skip",
                           f"skipped: the loss regresses one chosen output per row ({loss:.4g})",
                           "no expectation for a value regressed at chosen outputs",
                           "a TD error's Q(s, a) gathered at the actions taken: its targets follow the rewards' scale "
                           "and the bootstrapped values, not a data set's (DQN clips the rewards to [-1, 1] instead)")
        const = _centred_part_loss(loss_fn, out, y) if targets else None
        if targets and (const is None or loss > 2.0 * const):
            return Verdict("initial loss", "warn", round(loss, 4), "targets near zero mean and unit scale",
                           f"outputs start near 0 and {targets}")
        return Verdict("initial loss", "skip", f"skipped: a loss of several targets ({loss:.4g})",
                       "no expectation for a loss of a tuple or dict of targets",
                       "compare by hand with the loss of uninformative outputs for each target")
    if kind == "unknown":
        return Verdict("initial loss", "skip", f"skipped: unknown loss ({loss:.4g})", "no expectation for this loss",
                       "pass a torch loss (function or nn.Module) or compare by hand with a constant predictor's loss")
    if found is None:
        return Verdict("initial loss", "skip", f"skipped: no class scores in the output {O.describe(out)} "
                       f"({loss:.4g})", "an output tensor for the loss", "")
    expected, formula = found
    width = O.logits(out).shape[1] if O.logits(out).dim() > 1 else 1
    if num_classes and kind == "cross_entropy" and width != num_classes:
        formula += f" (the data has {num_classes} classes, the model {width} outputs)"
    status, ratio, expected_text = _judged(kind, loss, expected, formula, O.logits(out), y, loss_fn)
    scale = input_scale(x)
    trained = predicts_labels(O.logits(out), y) if status != "pass" and ratio < 1 else None
    advice = "" if status == "pass" else "initial outputs are not near-uniform: " + (
        scale if scale else _last_layer_advice(model, x, O.logits(out)) if ratio > 1 else
        f"the model already predicts these labels ({trained.replace(' before any update', '')}): its weights were "
        f"trained before this check (reused from an earlier cross-validation fold, or loaded); check a freshly "
        f"built model, and {TRAINED_ADVICE}" if trained else
        f"{_suspect_layer(model, x)}; a loss below the uninformative one at init: do the labels leak into the "
        "inputs, or are the classes very unbalanced?")
    scores = O.logits(out)
    if status != "pass" and ratio > 1 and not scale:
        by_design = _scale_not_an_init(model, x, kind, round(loss, 4), expected_text, scores)
        if by_design is not None:
            return by_design
    if kind == "nll" and scores is not None and scores.is_floating_point() and _normalization(scores) != "log":
        return Verdict("initial loss", "fail", round(loss, 4), expected_text + "; on log-probabilities",
                       "NLLLoss on outputs that are not log-probabilities (rows whose logsumexp is not 0"
                       f"{'; a negative NLL' if loss < 0 else ''}): it then rewards growing the right class's raw "
                       "score without bound; end the model with log_softmax(dim=1), or use CrossEntropyLoss on the "
                       "raw logits (it applies log_softmax itself)")
    if kind == "cross_entropy" and status != "fail" and scores is not None and _normalization(scores) == "prob":
        return Verdict("initial loss", "warn", round(loss, 4), expected_text + "; on raw logits",
                       "the model's outputs are probabilities (each row >= 0 and summing to 1): cross-entropy applies "
                       "its own softmax, and a softmax before it squashes the gradients; remove the last Softmax (or "
                       "use NLLLoss on log_softmax)")
    if kind in _REGRESSION and status != "fail":
        targets = far_from_unit(y)
        const = constant_loss(loss_fn, out, y) if targets else None
        if const is not None and loss > 2.0 * const:
            status = "warn"
            expected_text += f"; the best constant predictor gives {const:.4g}"
            advice = (f"the initial loss is {loss / max(const, 1e-300):.3g}x a constant predictor's: outputs start "
                      f"near 0 and {targets}")
    return Verdict("initial loss", status, round(loss, 4), expected_text, advice)

