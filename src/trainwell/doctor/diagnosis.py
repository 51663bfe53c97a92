"""Post-flight diagnosis: read the loss curve, split the error into bias and variance, measure overfitting.

The learning rate read off the loss curve lives in :mod:`~trainwell.doctor.curve_reading` (re-exported here, with
the other post-flight readings).

Bias/variance (Ng, "Machine Learning Yearning"): avoidable bias = training error - human-level error; variance =
validation error - training error; fix the larger one first.
"""

from __future__ import annotations

import math

from trainwell.doctor.curve_reading import learning_rate_diagnosis  # noqa: F401 (the post-flight readings, together)
from trainwell.doctor.unchanging_validation import unchanging_validation
from trainwell.doctor.unimproved_validation import (
    COPY_ADVICE,
    MEMORIZING_ADVICE,
    TRAINED_ADVICE,
    never_improved,
    rising_from_the_start,
)
from trainwell.doctor.validation_scale import validation_scale
from trainwell.doctor.verdict import Verdict

#: with no human-level error known, a training error above this is still a bias warning
UNKNOWN_HUMAN_BIAS = 0.2


def bias_variance(train_error: float, val_error: float, human_error: float | None = None,
                  tolerance: float = 0.02, val_examples: int | None = None) -> Verdict:
    """Avoidable bias (train - human) vs variance (val - train), the dominant one, and the lecture's remedy.

    Without a human-level (Bayes proxy) error the avoidable bias is unknown: the verdict says so and reads the
    training error as its upper bound (human level taken as 0%); high bias is then 'info', not a warning, unless
    the training error exceeds 20%. High variance needs no human level: it stays a warning. With
    ``val_examples`` (the validation set's size) a gap is read as variance only beyond two standard errors of the
    validation error, sqrt(e (1 - e) / n): on 360 examples at 5% error that is 2.3 points, more than the 2-point
    tolerance, and a smaller gap is sampling noise.

    >>> bias_variance(0.03, 0.052, 0.02).status, bias_variance(0.03, 0.052, 0.02, val_examples=360).status
    ('warn', 'pass')
    """
    human = human_error if human_error is not None else 0.0
    if val_examples:
        tolerance = max(tolerance, 2 * math.sqrt(max(val_error * (1 - val_error), 0.0) / val_examples))
    limit = f"both <= {round(tolerance * 100, 1):g}%"
    bias, variance = train_error - human, val_error - train_error
    human_text = f"human {human:.1%}" if human_error is not None else "human-level error unknown (taken as 0%)"
    if bias < 0:  # below human level: there is no avoidable bias to act on, and a negative number would mislead
        bias_part = f"train error below human level by {-bias:.1%} (no avoidable bias)"
        bias = 0.0
    else:
        bias_part = f"{'avoidable bias' if human_error is not None else 'avoidable bias <='} {bias:.1%}"
    value = (f"train error {train_error:.1%}, val error {val_error:.1%}, {human_text}: {bias_part}, "
             f"variance {variance:.1%}")
    if max(bias, variance) <= tolerance:
        return Verdict("bias/variance", "pass", value, limit, "")
    if human_error is not None and val_error <= human_error:
        return Verdict("bias/variance", "pass", "better than human-level: " + value, limit,
                       "human-level error no longer bounds the Bayes error here; judge progress by val error")
    if bias >= variance:
        unknown = "" if human_error is not None else (
            "; give the human-level error (doctor.human_error) to tell avoidable from unavoidable error")
        # without a human level the bias is only an upper bound: information, unless the training error alone is
        # large (above UNKNOWN_HUMAN_BIAS)
        status = "warn" if human_error is not None or train_error > UNKNOWN_HUMAN_BIAS else "info"
        return Verdict("bias/variance", status, "high bias: " + value, limit,
                       "underfitting: a bigger model, longer training, a better optimizer or architecture" + unknown)
    return Verdict("bias/variance", "warn", "high variance: " + value, limit,
                   "overfitting: more data, augmentation, regularization (weight decay, dropout), early stopping or "
                   "a smaller model")


#: the value of the overfitting verdict when a validation loss is NaN/Inf while training was finite: a cause the
#: learning-rate and bias/variance verdicts defer to (:func:`~trainwell.doctor.loop_deferral.defer`)
VALIDATION_NOT_FINITE = "validation loss not finite"


def overfitting(history: list[dict], onset_epoch: int | None, classes: int | None = None,
                first_loss: float | None = None, trained: str | None = None, copy_evaluated: bool = False) -> Verdict:
    """The generalization gap at the end and the epoch where overfitting set in (if it did: a warning). A large gap
    without that onset (:func:`_large_gap`) is 'info'; a validation loss that is NaN/Inf fails (with a finite
    training loss the evaluation gives it); one that does not change while the training loss falls warns
    (:mod:`~trainwell.doctor.unchanging_validation`, read after the scale: on another scale the model's change is
    too small a share of the loss to show): the gap is then not the trained model's. Without an onset, a
    validation loss that never improved on its first value and trends up while the training loss falls warns too
    (:mod:`~trainwell.doctor.unimproved_validation`; ``classes``: C of a mean cross-entropy, whose ln C a validation
    loss that learned nothing never goes below; ``first_loss``: the run's first training loss, which every
    validation loss far above is measured on another scale, :mod:`~trainwell.doctor.validation_scale`;
    ``trained``: what shows the model predicted its labels before the first update, when validation then never
    improved, :mod:`~trainwell.doctor.trained_start`; ``copy_evaluated``: no validation followed a forward of the
    watched model, so the evaluated model may be a copy that is not kept in step)."""
    if not history or "val_loss" not in history[-1]:
        return Verdict("overfitting", "skip", "skipped: no validation data", "-", "")
    evaluated = [h for h in history if "val_loss" in h and "train_loss" in h]
    # the scale first: a validation error in raw units (1e10) hides the model's change below 1e-6 of its value,
    # which would read as a loss that does not change
    broken = _nonfinite_validation(evaluated) or validation_scale(evaluated, first_loss) or \
        unchanging_validation(evaluated)
    if broken is not None:
        return broken
    last = history[-1]
    value = f"gap: val - train loss {last['val_loss'] - last['train_loss']:.3g}"
    if "train_acc" in last and "val_acc" in last:
        value += f", train - val accuracy {last['train_acc'] - last['val_acc']:.1%}"
    expected = "val loss not rising while train falls"
    unimproved = never_improved(evaluated, classes) if onset_epoch is not None else None
    if unimproved is not None and trained is not None:
        return Verdict("overfitting", "warn", value + f"; onset at epoch {onset_epoch + 1}; validation never "
                       f"improved; the model was trained before the run ({trained})", expected, TRAINED_ADVICE)
    if unimproved is not None:
        # the onset's best epoch is (nearly) the first evaluation's: early stopping keeps little or nothing, so the
        # advice asks why what the training fitted does not carry over to the validation data
        kept = ("stopping at the best validation epoch would keep a model that learned nothing that carries over"
                if "ln C" in unimproved else "what the training fitted after the first evaluation did not carry "
                "over")
        return Verdict("overfitting", "warn", value + f"; onset at epoch {onset_epoch + 1}, but {unimproved}: "
                       f"{kept}", expected, (COPY_ADVICE if copy_evaluated else "") + MEMORIZING_ADVICE)
    if onset_epoch is not None and onset_epoch == len(history) - 1 and len(evaluated) == len(history):
        # the rise was first seen at the run's last evaluation: the run stopped where early stopping with that
        # patience stops (a loop that stops by hand once validation has not improved for a few epochs)
        best = min(range(len(evaluated)), key=lambda i: evaluated[i]["val_loss"])
        return Verdict("overfitting", "info", value + f"; validation rose over the last evaluations and the run "
                       f"stopped at the onset (epoch {onset_epoch + 1}), as early stopping does", expected,
                       f"keep the weights of the best validation epoch (epoch {best + 1}: val loss "
                       f"{evaluated[best]['val_loss']:.4g}), if the loop does not restore them")
    if onset_epoch is not None:
        return Verdict("overfitting", "warn", value + f"; onset at epoch {onset_epoch + 1}",  # epochs read from 1
                       expected, "stop earlier (early stopping: keep the weights of the best validation epoch; in "
                       "trainwell's config stop.criteria = ['early_stopping']) or regularize")
    rising = rising_from_the_start(evaluated, classes, trained, copy_evaluated)
    if rising is not None:
        return Verdict(rising.check, rising.status, f"{value}; {rising.value}", rising.expected, rising.advice)
    gap = _large_gap(evaluated) if evaluated else None
    if gap is not None:  # information: a loss gap alone does not say how much accuracy is lost
        return Verdict("overfitting", "info", f"{value}; {gap}, no rising onset", expected,
                       "the model fits its training data far better than held-out data (variance): more data, "
                       "augmentation, regularization (weight decay, dropout) or a smaller model; give report() "
                       "train_error and val_error for the bias/variance verdict (a loss gap can come from a few "
                       "confident mistakes)")
    return Verdict("overfitting", "pass", value + "; no onset detected", expected)


#: a validation loss over this multiple of the training loss (means over the last half of the evaluations) ...
GAP_RATIO = 2.0
#: ... and above it by more than this share of the first evaluation's training loss is a large gap
GAP_SHARE = 0.25


def _large_gap(history: list[dict]) -> str | None:
    """What makes the train/validation gap large, or None: over the last half of the evaluations the mean
    validation loss is more than twice the mean training loss, and the gap is over a quarter of the first
    evaluation's training loss (so that two losses near 0, 0.001 and 0.003, are no gap). The training loss is
    read in training mode (dropout on, augmented batches), which narrows the gap."""
    late = history[len(history) // 2 :]
    val = sum(float(h["val_loss"]) for h in late) / len(late)
    train = sum(float(h["train_loss"]) for h in late) / len(late)
    first = float(history[0]["train_loss"])
    if not (train > 0 and first > 0 and math.isfinite(train) and math.isfinite(first)):
        return None
    if val <= GAP_RATIO * train or val - train <= GAP_SHARE * first:
        return None
    over = f"the last {len(late)} evaluations" if len(late) > 1 else "the last evaluation"
    return f"validation loss {val:.3g} vs training loss {train:.3g} over {over} ({val / train:.2g}x)"


def _nonfinite_validation(history: list[dict]) -> Verdict | None:
    """A fail naming the first validation loss that is NaN/Inf, or None. With the training loss finite up to it,
    the evaluation makes it (the value then names a cause the learning-rate verdict defers to); with the training
    loss not finite too, training diverged first."""
    bad = [i for i, h in enumerate(history) if not math.isfinite(float(h["val_loss"]))]
    if not bad:
        return None
    i = bad[0]
    v = float(history[i]["val_loss"])
    where = f"{'NaN' if math.isnan(v) else ('-' if v < 0 else '') + 'Inf'} at validation {i + 1}" + (
        f"; {len(bad)} of {len(history)} not finite" if len(history) > 1 else "")
    if not all(math.isfinite(float(h["train_loss"])) for h in history[: i + 1]):
        return Verdict("overfitting", "fail", f"{VALIDATION_NOT_FINITE} ({where}), nor is the training loss",
                       "a finite validation loss", "training diverged first: see the learning-rate verdict")
    return Verdict("overfitting", "fail", f"{VALIDATION_NOT_FINITE} ({where}) while the training loss is finite",
                   "a finite validation loss", "the evaluation gives NaN/Inf: check the validation data for NaN/Inf "
                   "and the eval-mode forward (model.eval(), torch.no_grad()): a row whose every attention key is "
                   "masked gives NaN there (an inverted key padding mask: True marks the keys to ignore), as do a "
                   "log of 0 and a division by an empty count")


LR_CURVE = "learning rate (loss curve)"


def reconcile(verdicts: list[dict]) -> list[dict]:
    """Make LR advice agree: when the loss curve (which measures the whole model) says the learning rate is too
    high, no other verdict may tell the user to raise it, and vice versa; such advice is rewritten to say why.

    Returns new dicts; the statuses and values are kept.
    """
    curve = next((v for v in verdicts if v.get("check") == LR_CURVE), None)
    value = (curve or {}).get("value", "")
    if value.startswith(("too high", "high")):
        wrong, says = "raise the learning rate", "too high"
    elif value.startswith("too low"):
        wrong, says = "lower the learning rate", "too low"
    else:
        return [dict(v) for v in verdicts]
    out = []
    for v in verdicts:
        v = dict(v)
        advice = v.get("advice") or ""
        if v.get("check") != LR_CURVE and wrong in advice:
            v["advice"] = (f"the loss curve says the learning rate is {says}, so do not {wrong.split()[0]} it: "
                           f"this layer's updates are out of scale with the rest; look at its initialization or "
                           f"add normalization")
        out.append(v)
    return out
