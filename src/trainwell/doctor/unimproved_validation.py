"""A validation loss that never improves on its first value and climbs while the training loss falls.

A model that learns something about its inputs lowers the validation loss with the training loss; one that
memorizes its training examples (labels shuffled apart from their inputs, far too few examples) lowers only the
training loss, and the validation loss stays at its first value or rises from the first evaluation on, never going
below the untrained level ln C of a cross-entropy over C classes. Such a rise is seldom monotone: evaluation noise
breaks the run of rising evaluations that an onset detector waits for (5 in a row), so the rise is read as a
trend instead: the least-squares slope of the validation losses over the evaluations, more than two standard
errors above 0. A healthy run whose validation loss is noisy around a level it reached at the first evaluation has
no such trend, and one whose validation loss improved first is judged by the onset detector.

:func:`never_improved` is the criterion the loss curve's memorization reading
(:mod:`~trainwell.doctor.memorizing_curve`) shares.
"""

from __future__ import annotations

import math

from trainwell.doctor.trained_start import ADVICE
from trainwell.doctor.verdict import Verdict

#: validation counts as improved when its best value lies below its first by this share of the training drop, in
#: the losses' units or as a share of each one's first value (a training loss with extra terms, such as a
#: distillation loss scaled by T², falls by more units than a validation cross-entropy that improves as much)
IMPROVED_SHARE = 0.25
#: evaluations needed to say that validation never improved
MIN_EVALUATIONS = 3
#: evaluations needed to read a trend of the validation loss
MIN_TREND = 4
#: the validation loss's slope must lie this many standard errors above 0
TREND_SIGMAS = 2.0


def never_improved(history: list[dict], classes: int | None = None) -> str | None:
    """What shows that the validation loss never improved while the training loss fell, or None.

    Args:
        history: per evaluation, ``train_loss`` (the training loss of the steps before it) and ``val_loss``.
        classes: C, when the loss is a softmax cross-entropy over C classes: a validation loss that never goes
            below ln C while the training loss ends below it has learned nothing that carries over.

    Returns:
        "validation never improved (first ..., best later ..., last ...)" when 3+ finite evaluations show the
        training loss falling and the best later validation loss no lower than the first by a quarter of the
        training drop, in units and, with both first losses above 0, relative to its first value (or never below
        ln C while the training loss ends below it); else None.
    """
    points = [(h["train_loss"], h["val_loss"]) for h in history if "val_loss" in h and "train_loss" in h]
    if len(points) < MIN_EVALUATIONS or not all(math.isfinite(v) for p in points for v in p):
        return None
    trains, vals = [p[0] for p in points], [p[1] for p in points]
    drop = trains[0] - trains[-1]
    if drop <= 0:
        return None
    best = min(vals[1:])
    flat = best >= vals[0] - IMPROVED_SHARE * drop
    if trains[0] > 0 and vals[0] > 0:  # the two losses may be on other scales: their relative drops compared too
        flat = flat and (vals[0] - best) / vals[0] < IMPROVED_SHARE * drop / trains[0]
    untrained = classes is not None and classes >= 2 and trains[-1] < math.log(classes) <= min(vals)
    if not (flat or untrained):
        return None
    return f"validation never improved (first {vals[0]:.3g}, best later {best:.3g}, last {vals[-1]:.3g}" + \
        (f"; ln C = {math.log(classes):.3g})" if untrained else ")")


#: what a run that began with a trained model and validated best at its first evaluation is told
TRAINED_ADVICE = ("the model was trained before this run began, and its validation loss was lowest at the first "
                  "evaluation: in cross-validation, " + ADVICE + "; a model resumed on the same data overfits from "
                  "the start: stop earlier or regularize")


#: what a run whose validation loss rose from the start while its training loss fell is told
MEMORIZING_ADVICE = ("the model fits its training examples but nothing that carries over, from the first evaluation "
                     "on: check that the labels are aligned with their inputs (x and y shuffled with one permutation, "
                     "the same row order in both files) and that there is enough data; doctor.check's "
                     "input-independent baseline tells whether the inputs predict the labels at all. Where the "
                     "training loss falls fast, check that the validation data is prepared as the training data "
                     "(the same columns in the same order, the same scaling and label encoding)")
#: what a run whose every validation evaluated another model than the watched one is told first
COPY_ADVICE = ("no w.validate() came after a forward of the watched model: if another model is evaluated (an EMA "
               "copy), check that it receives the trained weights and the BatchNorm running statistics too "
               "(its buffers(), not only its parameters()); else ")


def rising_from_the_start(history: list[dict], classes: int | None = None,
                          trained: str | None = None, copy_evaluated: bool = False) -> Verdict | None:
    """The overfitting verdict's warning when the validation loss never improved (:func:`never_improved`) and
    rises over the run, its least-squares slope over 4+ evaluations more than two standard errors above 0 and its
    last value above its first, while the training loss fell; else None. With ``trained`` (what shows that the model
    predicted its labels before the run's first update, :mod:`~trainwell.doctor.trained_start`), its best validation
    at the first evaluation is what it learned before (a model reused across cross-validation folds has trained on
    this fold's validation examples), not labels misaligned. ``copy_evaluated``: no validation followed a forward
    of the watched model (another model was evaluated, an EMA copy whose BatchNorm buffers may never be copied)."""
    seen = never_improved(history, classes)
    vals = [float(h["val_loss"]) for h in history]
    if seen is None or len(vals) < MIN_TREND or vals[-1] <= vals[0]:
        return None
    slope, error = _slope(vals)
    if slope <= TREND_SIGMAS * error:
        return None
    ups = sum(b > a for a, b in zip(vals, vals[1:], strict=False))
    first, last = float(history[0]["train_loss"]), float(history[-1]["train_loss"])
    value = (f"{seen}: it rose on {ups} of {len(vals) - 1} evaluations (+{slope:.3g} per evaluation) while the "
             f"training loss fell ({first:.3g} -> {last:.3g})")
    if trained is not None:
        return Verdict("overfitting", "warn", f"{value}; the model was trained before the run ({trained})",
                       "val loss not rising while train falls", TRAINED_ADVICE)
    return Verdict("overfitting", "warn", value, "val loss not rising while train falls",
                   (COPY_ADVICE if copy_evaluated else "") + MEMORIZING_ADVICE)


def _slope(values: list[float]) -> tuple[float, float]:
    """The least-squares slope of ``values`` over their index, and its standard error (from the residuals)."""
    n = len(values)
    mean_t, mean_v = (n - 1) / 2, sum(values) / n
    sxx = sum((t - mean_t) ** 2 for t in range(n))
    slope = sum((t - mean_t) * (v - mean_v) for t, v in enumerate(values)) / sxx
    residual = sum((v - mean_v - slope * (t - mean_t)) ** 2 for t, v in enumerate(values))
    return slope, math.sqrt(residual / (n - 2) / sxx)
