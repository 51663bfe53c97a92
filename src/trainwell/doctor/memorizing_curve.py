"""A slow training-loss decrease that validation never shares: the model memorizes, the rate is not low.

The loss curve's "too low" reading (a slow, near-linear decrease) advises raising the learning rate. With
validation losses given, that reading can be checked: a model that learns something about its inputs lowers the
validation loss with the training loss; one that memorizes its training examples (labels shuffled apart from
their inputs, too few examples for what they ask) lowers only the training loss, and the validation loss stays at
its first value or rises, never going below the untrained level ln C of a cross-entropy over C classes. A larger
rate then only memorizes faster, so the verdict names the memorization instead (the criterion,
:func:`~trainwell.doctor.unimproved_validation.never_improved`, is the overfitting verdict's too).
"""

from __future__ import annotations

from trainwell.doctor.diagnosis import LR_CURVE
from trainwell.doctor.unimproved_validation import TRAINED_ADVICE, never_improved
from trainwell.doctor.verdict import Verdict


def memorizing(curve: Verdict, history: list[dict], classes: int | None = None,
               trained: str | None = None) -> Verdict:
    """``curve`` (the loss curve's verdict) rewritten when it reads "too low" while validation never improved.

    Args:
        curve: :func:`~trainwell.doctor.diagnosis.learning_rate_diagnosis`'s verdict.
        history: per evaluation, ``train_loss`` (the training loss of the steps before it) and ``val_loss``.
        classes: C, when the loss is a softmax cross-entropy over C classes: a validation loss that never goes
            below ln C while the training loss ends below it has learned nothing that carries over.
        trained: what shows the model predicted its labels before the run's first update
            (:mod:`~trainwell.doctor.trained_start`): its validation was best at the first evaluation because of
            that, not because labels are misaligned.

    Returns:
        ``curve`` unchanged, or a warning that the training loss falls by memorization only.
    """
    if curve.check != LR_CURVE or curve.status not in ("warn", "fail") or not str(curve.value).startswith("too low"):
        return curve
    seen = never_improved(history, classes)
    if seen is None:
        return curve
    if trained is not None:
        return Verdict(curve.check, "warn", f"{curve.value}; validation does not share it: {seen}; the model was "
                       f"trained before the run ({trained})", curve.expected,
                       f"the learning rate is not the cause: {TRAINED_ADVICE}")
    return Verdict(curve.check, "warn", f"{curve.value}; the training loss falls by memorization only: {seen}",
                   curve.expected, "the learning rate is not the cause: a larger rate only memorizes faster. Check "
                   "that the labels are aligned with their inputs (x and y shuffled with one permutation, the same "
                   "row order in both files) and that there is enough data; doctor.check's input-independent "
                   "baseline tells whether the inputs predict the labels at all")


def mean_cross_entropy_classes(steps: list[dict]) -> int | None:
    """C, when every observed step whose loss form was read (:mod:`~trainwell.doctor.loss_form`) reads it as a
    mean cross-entropy over C classes (its untrained level is then ln C), else None."""
    read = [s for s in steps if s.get("form") is not None]
    mean = all(s["form"] == "cross_entropy" and abs((s.get("loss_weight") or 0) - 1) < 0.05 for s in read)
    return read[0]["classes"] if read and mean else None
