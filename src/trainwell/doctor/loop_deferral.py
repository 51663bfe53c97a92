"""Which verdicts of a watched loop follow from a cause another verdict found, and read as 'info' naming it: the
learning-rate, bias/variance and update-ratio verdicts defer to a ``loop:`` cause that fired, the monitors that
inputs far from unit scale (or too small an init, or BatchNorm on a handful of values) explain defer to it, and the
overfitting verdict to validations that did not measure what it reads (:func:`defer`). The verdicts themselves are
in :mod:`trainwell.doctor.loop_verdicts` and the modules it names.
"""

from __future__ import annotations

import math

from trainwell.doctor import diagnosis
from trainwell.doctor.augmented_validation import CHANGED
from trainwell.doctor.batch_statistics import NAME as BATCH_STATISTICS
from trainwell.doctor.capped_outputs import defer_collapse_to_cap
from trainwell.doctor.class_weights import GROW
from trainwell.doctor.depth_collapse import NAME as COLLAPSE
from trainwell.doctor.epoch_order import SAME_ORDER
from trainwell.doctor.input_independent_level import NAME as UNMATCHED_LABELS
from trainwell.doctor.loop_loss_inputs import CUT_EXPLAINS, CUT_OUTPUTS
from trainwell.doctor.loop_verdicts import TRAIN_MODE_VALIDATIONS, UNREAD_OPTIMIZER
from trainwell.doctor.loss_form import NON_NEGATIVE
from trainwell.doctor.loss_scaling import defers_to_clipping
from trainwell.doctor.mixed_validation import MIXED
from trainwell.doctor.monitors import OUTPUT_UNITS
from trainwell.doctor.norm_groups import LOOP_NAME as NORM_GROUPS
from trainwell.doctor.output_layer import LOOP_NAME as OUTPUT_LAYER
from trainwell.doctor.output_width import UNUSED_OUTPUTS
from trainwell.doctor.pos_weight import POS_GROW
from trainwell.doctor.positive_init import NAME as POSITIVE_INIT
from trainwell.doctor.probability_logs import defer_to_rounded_log
from trainwell.doctor.relabelled_validation import NAME as RELABELLED
from trainwell.doctor.relabelled_validation import WRONG_NUMBERS
from trainwell.doctor.report_order import causes_named
from trainwell.doctor.reseeded_steps import SAME_DRAWS
from trainwell.doctor.smoothing_twice import TWICE
from trainwell.doctor.trained_symmetry import defer_to_symmetry
from trainwell.doctor.unbounded_loss import NAME as UNBOUNDED
from trainwell.doctor.validation_average import NAME as VALIDATION_AVERAGE
from trainwell.doctor.validation_average import WRONG_AVERAGE
from trainwell.doctor.validation_classes import NAME as VALIDATION_CLASSES
from trainwell.doctor.validation_classes import UNSEEN
from trainwell.doctor.validation_inputs import NAME as VALIDATION_INPUTS
from trainwell.doctor.validation_pads import PADS_COUNTED
from trainwell.doctor.verdict import Verdict
from trainwell.doctor.zero_sqrt import defer_to_zero_root

#: a fired loop cause makes these downstream verdicts defer to it
DOWNSTREAM = ("learning rate (loss curve)", "bias/variance", "monitor: update/weight ratio")
#: monitor verdicts that inputs far from unit scale explain (a first layer driven far into its range)
SCALE_DRIVEN = ("monitor: dead ReLUs", "monitor: saturated units", "monitor: vanishing gradients",
                "monitor: exploding gradients")


#: loop findings that leave the loss curve and the update sizes as they read: a constant target column is fitted by
#: its bias alone, the rest of the loss is trained as it should be
EXPLAINS_NOTHING_DOWNSTREAM = ("the binary target of output column", GROW, POS_GROW, TWICE, SAME_ORDER,
                              SAME_DRAWS, WRONG_AVERAGE, MIXED, CHANGED, WRONG_NUMBERS, UNSEEN,
                              PADS_COUNTED, UNUSED_OUTPUTS, UNREAD_OPTIMIZER)


def _defer_dead_outputs(verdicts: list[Verdict]) -> list[Verdict]:
    """Dead ReLUs that are the model's own output, beside a loss on scores that are never negative (a ReLU after
    the last layer): the units die because of that ReLU, which the loss's verdict names; they read as 'info'."""
    cause = next((v for v in verdicts if v.check == "loop: loss" and v.status in ("warn", "fail") and
                  NON_NEGATIVE in str(v.value)), None)
    if cause is None:
        return verdicts
    return [Verdict(v.check, "info", f"{v.value} (explained by 'loop: loss')", v.expected,
                    "fix 'loop: loss' first: the output units die because of the ReLU after the last layer")
            if v.check == "monitor: dead ReLUs" and v.status == "warn" and OUTPUT_UNITS in str(v.value) else v
            for v in verdicts]


def _defer_unmatched_labels(verdicts: list[Verdict]) -> list[Verdict]:
    """A loss at the labels' entropy (:mod:`~trainwell.doctor.input_independent_level`: labels that may not match
    the inputs) is what any cause that keeps the inputs from the outputs gives too (offsets that leave most bags
    empty, a frozen first layer): where another loop cause fired, it reads as 'info' naming that cause."""
    other = next((v for v in verdicts if v.check.startswith("loop:") and v.check != UNMATCHED_LABELS and
                  v.status in ("warn", "fail") and not str(v.value).startswith(EXPLAINS_NOTHING_DOWNSTREAM)), None)
    if other is None:
        return verdicts
    return [Verdict(v.check, "info", f"{v.value} (explained by '{other.check}')", v.expected,
                    f"fix '{other.check}' first: the loss stays at the input-independent baseline because of it")
            if v.check == UNMATCHED_LABELS and v.status == "warn" else v for v in verdicts]


def _overfitting_explained(v: Verdict, cause: Verdict) -> Verdict:
    """An overfitting warning that follows from ``cause``: activations that collapse through depth (nothing that
    carries over is learned), or a normalization of 2 to 4 values per channel or group (what it passes on is a few
    patterns; a BatchNorm's eval mode, on its running statistics, is then another network than the one trained)."""
    why = ("a network that passes no signal through its depth learns nothing that carries over" if cause.check ==
           COLLAPSE else "normalized over so few values, the layer passes on little of its inputs, so little that "
           "carries over is learned" + (", and in eval mode (running statistics) it computes another function than "
                                        "the one trained: the gap is not overfitting"
                                        if cause.check == BATCH_STATISTICS else ""))
    return Verdict(v.check, "info", f"{v.value} (explained by '{cause.check}')", v.expected,
                   f"fix '{cause.check}' first: {why}")


def defer(verdicts: list[Verdict]) -> list[Verdict]:
    """The learning-rate, bias/variance and update-ratio verdicts defer to a loop cause that fired (warn/fail), and
    the dead-unit, saturation and vanishing/exploding-gradient monitors to inputs far from unit scale (and, with
    the non-finite monitors, to a loss that falls without bound (these and a non-finite validation loss also to a
    log of a probability that rounded to 0, and to a square root taken at 0); and all of these to activations that
    collapse through depth, an init too small, BatchNorm normalizing 2 to 4 values per channel, or a GroupNorm,
    LayerNorm or InstanceNorm normalizing 1 or 2 values per group, which the overfitting warning defers to too), and
    the overfitting verdict to validations run in train mode (its gap and onset read dropout-noised losses) or on
    inputs not preprocessed like the training inputs (and its non-finite validation loss to NaN in the inputs):
    their reading (even a "good") follows from the bug, and their advice would point the wrong way (no "lower the
    learning rate" when gradients accumulate, no "raise it" when the optimizer does not hold the parameters). They
    become 'info', naming the cause. Scores never negative (a ReLU after the last layer) explain the dead ReLUs
    of the model's output. A regressor's outputs cut at 0 against negative targets explain rows tied at
    0, dead units and parameters that get no gradient. A first loss far above ln C defers to most units dropped,
    to a BatchNorm on the scores or to inputs far above unit scale. Frozen parameters (an 'info') are named in a
    flat or slow learning-rate verdict. Weights initialized all positive explain, first of all, the warnings they
    cause. Dead ReLUs found while a loop cause drove the steps name it (and stay warnings). Hidden units still
    identical after training explain the parameters with no gradient, the outputs that ignore the inputs and the
    dead units. A loss at the labels' entropy defers to any other loop cause that fired."""
    verdicts = _defer_dead_outputs(defer_collapse_to_cap(_defer_to_positive_init(defer_to_symmetry(verdicts))))
    verdicts = _defer_unmatched_labels(verdicts)
    causes = [v for v in verdicts if (v.check.startswith("loop:") or v.check == "parameters registered")
              and v.status in ("warn", "fail") and not str(v.value).startswith(EXPLAINS_NOTHING_DOWNSTREAM)
              and not defers_to_clipping(v, verdicts)]
    causes += [v for v in verdicts if _evaluation_fault(v)]
    cut = next((c for c in causes if str(c.value).startswith(CUT_OUTPUTS)), None)  # a ReLU ending a regressor
    causes = [c for c in causes if cut is None or c.check not in CUT_EXPLAINS]
    collapsed = next((v for v in verdicts if v.check == COLLAPSE and v.status == "warn"), None)  # init too small
    causes += [collapsed] if collapsed is not None else []
    frozen = next((v for v in verdicts if v.check == "loop: every trainable parameter learns" and v.status == "info"),
                  None)
    nan_inputs = next((c for c in causes if c.check == "loop: inputs" and "NaN" in str(c.value)), None)
    raw_inputs = next((c for c in causes if c.check == "loop: inputs" and
                       ("far from unit scale" in str(c.value) or "far below unit scale" in str(c.value))), None)
    large_inputs = raw_inputs if raw_inputs is not None and "far from unit scale" in str(raw_inputs.value) else None
    dropped = next((c for c in causes if c.check == "loop: dropout rate"), None)  # most units dropped
    normed = next((c for c in causes if c.check == OUTPUT_LAYER), None)  # a BatchNorm on the scores
    # BatchNorm on 2-4 values per channel: the gradient through it is about 0, its outputs a few patterns
    few_values = next((c for c in causes if c.check in (BATCH_STATISTICS, NORM_GROUPS)), None)
    summed = next((v for v in verdicts if v.check == "loop: loss" and v.status == "info"
                   and str(v.value).startswith("summed")), None)
    from_start = next((v for v in verdicts if v.check == DOWNSTREAM[0] and "before any update" in str(v.value)),
                      None)
    unbounded = next((c for c in causes if c.check == UNBOUNDED), None)  # the weights grow with the loss
    train_mode = next((c for c in causes if c.check == "loop: train/eval mode" and
                       TRAIN_MODE_VALIDATIONS in str(c.value)), None)
    mismeasured = _mismeasured(causes, verdicts)  # validations that read another scale than the model's loss
    out = []
    for v in verdicts:
        if cut is not None and v.check in CUT_EXPLAINS and v.status in ("warn", "fail"):
            v = Verdict(v.check, "info", f"{v.value} (explained by '{cut.check}')", v.expected,
                        f"fix '{cut.check}' first: outputs cut at 0 are 0 alike and pass no gradient there")
        elif mismeasured is not None and v.check == "overfitting" and not _evaluation_fault(v) and \
                v.status in mismeasured[2]:
            v = Verdict(v.check, "info", f"{v.value} (explained by '{mismeasured[0]}')", v.expected, mismeasured[1])
        elif train_mode is not None and v.check == "overfitting" and not _evaluation_fault(v) and \
                v.status in ("pass", "warn", "info"):
            v = Verdict(v.check, "info", f"{v.value} (explained by 'loop: train/eval mode')", v.expected,
                        "the validation losses were measured in train mode (dropout on, BatchNorm on batch "
                        "statistics): they sit above the eval-mode ones by an amount that is not overfitting; call "
                        "model.eval() before validating, then read the gap")
        elif (collapsed or few_values) is not None and v.check == "overfitting" and v.status == "warn" and \
                not _evaluation_fault(v):
            v = _overfitting_explained(v, collapsed or few_values)
        elif unbounded is not None and (v.check in SCALE_DRIVEN or v.check.startswith("monitor: non-finite")) and \
                v.status in ("warn", "fail"):
            v = Verdict(v.check, "info", f"{v.value} (explained by '{UNBOUNDED}')", v.expected,
                        "the loss falls without bound: fix its sign first; the weights grow with it")
        elif from_start is not None and nan_inputs is None and v.check.startswith("monitor: non-finite") and \
                v.status == "fail":
            v = Verdict(v.check, "info", f"{v.value} (the loss was not finite at step 0, before any update)",
                        v.expected, "the forward pass gives NaN/Inf from the start, so the learning rate is not the "
                        "cause: a softmax over a row that is all -inf (every attention key masked), a log of 0, a "
                        "division by 0; doctor.check(model, x, y, loss_fn) names the first module that outputs it")
        elif nan_inputs is not None and v.status == "fail" and (v.check.startswith("monitor: non-finite") or (
                v.check == "overfitting" and str(v.value).startswith(diagnosis.VALIDATION_NOT_FINITE))):
            v = Verdict(v.check, "info", f"{v.value} (explained by 'loop: inputs')", v.expected,
                        "the inputs hold NaN/Inf: fix the data first")
        elif (dropped or normed or large_inputs) is not None and v.check == "loop: loss" and \
                str(v.value).startswith("first loss") and v.status == "warn":
            # inverted dropout of p scales the kept units by 1 / (1 - p)
            cause = dropped or normed or large_inputs
            v = Verdict(v.check, "info", f"{v.value} (explained by '{cause.check}')", v.expected,
                        f"fix '{cause.check}' first: " + (
                            "the units it keeps are scaled up by 1 / (1 - p)" if cause is dropped else
                            "the scores are normalized over the batch after the last layer (std |gamma| = 1 at init)"
                            if cause is normed else f"{str(large_inputs.value).split('; ', 1)[-1]}: the first "
                            "scores grow with them (the inputs' std times too large), a softmax saturated on one class "
                            "from the start; standardize the inputs"))
        elif (raw_inputs or dropped or collapsed or few_values) is not None and v.check in SCALE_DRIVEN and \
                v.status == "warn":
            cause = raw_inputs or dropped or collapsed or few_values
            v = Verdict(v.check, "info", f"{v.value} (explained by '{cause.check}')", v.expected,
                        "the inputs are far from unit scale: normalize them first; this reading follows from it"
                        if cause is raw_inputs else f"fix '{cause.check}' first: this reading follows from it")
        elif defers_to_clipping(v, causes):
            v = Verdict(v.check, "info", f"{v.value} (the loss scale: explained by 'loop: gradients at "
                        "optimizer.step()')", v.expected, "the gradients were clipped before the loss scale was "
                        "divided out: fix that first; the loss is not counted twice")
        elif v.check in DOWNSTREAM and causes and (v.status in ("warn", "fail") or
                                                   (v.check == DOWNSTREAM[0] and v.status == "info" and
                                                    "explained by" not in str(v.value))):
            # the loss curve's information readings (levelled off, noisy) follow from the cause as much as its
            # warnings do; a healthy reading (a good curve) is no consequence of it and stays a pass
            names = ", ".join(_named(c) for c in causes[:2])
            v = Verdict(v.check, "info", f"{v.value} (explained by {names})", v.expected,
                        f"fix {names} first: this reading follows from it")
        elif v.check == DOWNSTREAM[0] and summed is not None and str(v.value).startswith(("too high", "high")):
            v = Verdict(v.check, v.status, v.value, v.expected, f"{v.advice}; the loss is {summed.value}: "
                        f"{summed.advice.split(': ', 1)[-1]}")
        elif v.check == DOWNSTREAM[0] and v.status == "warn" and frozen is not None and \
                str(v.value).startswith(("flat", "too low")):
            v = Verdict(v.check, "warn", f"{v.value}; {frozen.value}", v.expected,
                        "frozen parameters do not learn: if they should, unfreeze them (requires_grad_(True)) and "
                        "add them to the optimizer; otherwise " + (v.advice or ""))
        out.append(v)
    return defer_to_zero_root(defer_to_rounded_log(_defer_dead_to_loop_cause(out, causes)))


def defer_diverged_validation(verdicts: list[Verdict], losses: list[float] = ()) -> list[Verdict]:
    """What a diverged run's loss took with it follows from what made it diverge: the overfitting verdict's fail for
    a validation loss that is not finite because the training loss is not either, and the monitors' fails for
    activations or gradients gone NaN/Inf once the loss became so mid-run after climbing (``losses``, the loss
    curve: :func:`climbed`; a loss that was falling when it turned NaN/Inf met a layer that overflows, which the
    monitor's row names). What made it diverge is the
    learning-rate verdict where that is a problem, or the cause that verdict itself names (it reads 'info',
    explained by a loop cause). They read as 'info' naming it, so the report sends the reader to that cause first
    (as it does for the other consequences) and not to a layer or to the validation."""
    rate = next((v for v in verdicts if v.check == DOWNSTREAM[0]), None)
    if rate is None:
        return verdicts
    names = [rate.check] if rate.status in ("warn", "fail") else causes_named(rate)
    if not names:
        return verdicts
    named = ", ".join(f"'{n}'" for n in names)
    diverged = str(rate.value).startswith(DIVERGED) and climbed(losses)
    out = []
    for v in verdicts:
        if v.check == "overfitting" and v.status == "fail" and "nor is the training loss" in str(v.value):
            v = Verdict(v.check, "info", f"{v.value} (explained by {named})", v.expected,
                        f"fix {named} first: the training diverged, so the validation loss is not finite either")
        elif diverged and v.check in NON_FINITE and v.status == "fail":
            v = Verdict(v.check, "info", f"{v.value} (explained by {named})", v.expected,
                        f"fix {named} first: the training diverged ({str(rate.value).split(': ', 1)[-1]}), and "
                        f"the network's values with it; if they are still not finite after, {v.advice}")
        out.append(v)
    return out


def climbed(losses: list[float]) -> bool:
    """Whether the loss rose to :data:`CLIMB` times its first value or more before its first NaN/Inf: updates too
    large for the network (a rate too high, gradients summed over steps) blow the loss up over several steps
    before it overflows.

    >>> climbed([1.3, 47.0, 3.3e3, 9.3e7, float("nan")]), climbed([1.3, 1.1, 0.9, float("inf")])
    (True, False)
    """
    values = [float(v) for v in losses]
    first_bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), len(values))
    before = [abs(v) for v in values[:first_bad]]
    return len(before) >= 2 and max(before[1:]) >= CLIMB * max(before[0], 1e-12)


#: the learning-rate verdict's reading of a loss that became NaN/Inf after a finite start
DIVERGED = "too high: loss became"
#: how many times its first value a loss climbs to before it overflows, for the climb to read as a divergence
CLIMB = 10.0
#: the monitors' readings of NaN/Inf inside the network
NON_FINITE = ("monitor: non-finite activations", "monitor: non-finite gradients")


#: the monitor's own advice for dead ReLUs, which a loop cause that drove the updates makes point the wrong way
RATE_ADVICE = "lower the learning rate, use He init"


def _defer_dead_to_loop_cause(verdicts: list[Verdict], causes: list[Verdict]) -> list[Verdict]:
    """Dead ReLUs the monitor found at a snapshot of the loop's steps, on a run where a loop cause acted on those
    steps from the first (gradients summed over steps, batches sorted by label, ...): the updates that killed them
    are the cause's, so "lower the learning rate" points the wrong way. The warning keeps its level (the units are
    dead, and may stay so once the cause is fixed) and names the cause, so it reads after it. Causes that touch only
    the validations are not the training's."""
    trained = [c for c in causes if c.check.startswith("loop:") and not c.check.startswith("loop: validation")
               and TRAIN_MODE_VALIDATIONS not in str(c.value)]
    if not trained:
        return verdicts
    names = ", ".join(f"'{c.check}'" for c in trained[:2])
    return [Verdict(v.check, v.status, f"{v.value} (explained by {names})", v.expected,
                    f"fix {names} first: the units died on the steps it drove; if they are still dead after, "
                    f"{v.advice}")
            if v.check == "monitor: dead ReLUs" and v.status == "warn" and "explained by" not in str(v.value)
            and str(v.advice or "").startswith(RATE_ADVICE) else v for v in verdicts]


def _defer_to_positive_init(verdicts: list[Verdict]) -> list[Verdict]:
    """Where weights were initialized all positive (a warning of :mod:`~trainwell.doctor.positive_init`), the
    warnings that follow from it read as 'info' naming it: a first loss far above ln C, activations that collapse
    (the ReLUs the first huge updates killed), dead or saturated units, gradients that vanish or explode, outputs
    that no longer depend on the inputs."""
    if not any(v.check == POSITIVE_INIT and v.status == "warn" for v in verdicts):
        return verdicts
    follows = (COLLAPSE, "loop: inputs reach the outputs", *SCALE_DRIVEN)
    return [Verdict(v.check, "info", f"{v.value} (explained by '{POSITIVE_INIT}')", v.expected,
                    f"fix '{POSITIVE_INIT}' first: all-positive weights blow the activations up, and the first "
                    "updates kill the ReLUs")
            if v.status == "warn" and (v.check in follows or v.check == "loop: loss" and
                                       str(v.value).startswith("first loss")) else v
            for v in verdicts]


def _mismeasured(causes: list[Verdict], verdicts: list[Verdict]) -> tuple[str, str, tuple[str, ...]] | None:
    """The cause that makes the validation losses read another scale than the model's loss, the advice, and the
    overfitting statuses it explains: validation inputs not preprocessed like the training inputs, or validation
    losses averaged with the wrong denominator (then even a passing gap reads nothing; a cause of nothing else, so
    not among ``causes``)."""
    if any(v.check == VALIDATION_AVERAGE and v.status == "fail" for v in verdicts):
        return (VALIDATION_AVERAGE, "the validation losses are not the validation set's mean loss (averaged with the "
                "wrong denominator, a training batch's loss added in, or pads counted that the training ignores): "
                "average them per example (per token for a sequence loss) over the validation batches, then read "
                "the gap",
                ("pass", "warn", "info"))
    if any(v.check == RELABELLED and v.status == "fail" for v in verdicts):
        return (RELABELLED, "the validation labels are numbered differently from the training labels: the gap reads "
                "that, not overfitting; encode both splits with one encoder, then read the gap",
                ("pass", "warn", "info"))
    if any(v.check == VALIDATION_CLASSES and v.status in ("warn", "fail") for v in verdicts):
        return (VALIDATION_CLASSES, "the validation set holds classes the training never had: the gap reads them, "
                "not overfitting; shuffle before splitting, then read the gap", ("pass", "warn", "info"))
    if any(c.check == VALIDATION_INPUTS for c in causes):
        return (VALIDATION_INPUTS, "the validation inputs are not preprocessed like the training inputs: the gap "
                "reads that mismatch, not overfitting; preprocess them alike, then read the gap", ("warn", "info"))
    return None


def mismeasured_validation(verdicts: list[Verdict]) -> str | None:
    """The check that found the validation losses measure another scale than the model's loss (a validation
    average, labels numbered per split, classes the training never had), or None: a validation loss that never
    improved then tells nothing about memorization."""
    found = _mismeasured([], verdicts)
    return found[0] if found is not None else None


def _evaluation_fault(v: Verdict) -> bool:
    """The overfitting verdict's fail for a validation loss that is NaN/Inf while the training loss is finite: the
    model or the evaluation is broken (an inverted attention mask gives NaN in eval mode only), so the training
    curve's reading is not the cause to act on."""
    return v.check == "overfitting" and v.status == "fail" and \
        str(v.value).startswith(diagnosis.VALIDATION_NOT_FINITE) and "nor is the training loss" not in str(v.value)


def _named(cause: Verdict) -> str:
    """How a deferred verdict names its cause: the check, and what it found when the check's name alone would
    mislead ('overfitting' for a validation loss that is not finite)."""
    return f"'{cause.check}' ({diagnosis.VALIDATION_NOT_FINITE})" if _evaluation_fault(cause) else f"'{cause.check}'"
