"""The verdicts :meth:`trainwell.doctor.watch.Watch.report` assembles from what a watched loop did: the ``loop:``
verdicts (:mod:`trainwell.doctor.loop_verdicts` and the readers beside it), a flat loss curve's direction read from
the update/weight ratios (cs231n: ~1e-3 is healthy), and the curve's reading kept as information where the loss
is not one its parameters minimize (a game's player, a policy gradient, a Q-learning TD error; Sutton & Barto 2018,
section 6.5). Each function takes the :class:`~trainwell.doctor.watch.Watch` whose report it serves.
"""

from __future__ import annotations

import math
from collections import Counter

from trainwell.doctor import loop_data as ld
from trainwell.doctor import loop_loss as ll
from trainwell.doctor import loop_schedule as lsch
from trainwell.doctor import loop_verdicts as lv
from trainwell.doctor import weight_decay_pull
from trainwell.doctor.adam_settings import adam_settings
from trainwell.doctor.augmented_validation import augmented_validation
from trainwell.doctor.batch_flatten import loop_flattened_batch
from trainwell.doctor.batch_mixing import loop_batch_mixing
from trainwell.doctor.batch_standardized_targets import batch_standardized
from trainwell.doctor.batchnorm_momentum import batchnorm_momentum_verdict
from trainwell.doctor.bce_targets import binary_targets_verdict
from trainwell.doctor.class_weights import NAME as CLASS_WEIGHTS
from trainwell.doctor.class_weights import inverted_weights
from trainwell.doctor.clip_max_norm import nonpositive_max_norm
from trainwell.doctor.contrastive_floor import flat_at_floor
from trainwell.doctor.curve_reading import SLOW_SMALL_FALL, flat_verdict
from trainwell.doctor.detached_outputs import detached_outputs
from trainwell.doctor.doubled_skip import loop_doubled_skips
from trainwell.doctor.dropout_rate import dropout_rate_verdict
from trainwell.doctor.dropped_batches import dropped_batches
from trainwell.doctor.echoed_targets import loop_echo
from trainwell.doctor.empty_epochs import empty_epochs
from trainwell.doctor.epoch_order import same_order
from trainwell.doctor.epoch_steps import once_per_epoch
from trainwell.doctor.flat_outputs import flat_outputs
from trainwell.doctor.growing_gamma import growing_gamma, steep_gamma_advice
from trainwell.doctor.ignored_class_call import ignored_class_call
from trainwell.doctor.input_independent_level import constant_only, unmatched_labels
from trainwell.doctor.inverted_mask import loop_inverted_mask
from trainwell.doctor.loop_forward_hooks import first_tensor
from trainwell.doctor.loop_step_hooks import ADAPTIVE
from trainwell.doctor.loop_wiring import loop_wiring
from trainwell.doctor.low_precision import low_precision_weights
from trainwell.doctor.nonfinite_weights import nonfinite_start
from trainwell.doctor.norm_groups import loop_norm_groups
from trainwell.doctor.output_width import wider_than_labels
from trainwell.doctor.own_argmax_targets import own_argmax_targets
from trainwell.doctor.padding_read import loop_padding_idx
from trainwell.doctor.paired_labels import paired_elsewhere
from trainwell.doctor.plateau_steps import observed_ratios
from trainwell.doctor.pos_weight import inverted_pos_weight
from trainwell.doctor.positive_init import positive_verdict
from trainwell.doctor.probability_logs import probability_log_verdict
from trainwell.doctor.probability_targets import probability_targets_verdict
from trainwell.doctor.relabelled_validation import relabelled
from trainwell.doctor.repeated_validations import once_each
from trainwell.doctor.satisfied_at_start import satisfied_at_start
from trainwell.doctor.sequence_first_batches import loop_sequence_first
from trainwell.doctor.sequence_targets import loop_copied_tokens
from trainwell.doctor.shifted_classes import class_shift
from trainwell.doctor.smoothing_twice import smoothed_twice
from trainwell.doctor.stale_copy_statistics import stale_statistics
from trainwell.doctor.stuck_warmup import stuck_warmup
from trainwell.doctor.tied_rows import tied_rows_verdict
from trainwell.doctor.trained_symmetry import constant_init_verdict, trained_symmetry
from trainwell.doctor.unbounded_loss import unbounded_fall
from trainwell.doctor.unrelated_validation import unrelated
from trainwell.doctor.unscaled_cosine import unscaled_cosine
from trainwell.doctor.unstepped_schedulers import idle_plateaus, unstepped_plateaus, unstepped_verdict
from trainwell.doctor.validation_classes import unseen_classes
from trainwell.doctor.wide_init import wide_verdict
from trainwell.doctor.zero_sqrt import zero_root_verdict

#: update/weight ratios outside this band point a flat loss curve's learning rate up or down (10x around 1e-3)
FLAT_RATIO_BAND = (1e-4, 1e-2)
#: cs231n's healthy update/weight ratio: a slow fall under 5% reads "too low" only with a median ratio below it
HEALTHY_RATIO = 1e-3


def game(w, verdict):
    """One player's loss in a game (a GAN) does not fall as a loss its parameters minimize: a discriminator's
    hovers near 2 ln 2 when both players are balanced; nor does a policy gradient's (its weights, the
    advantages, change sign and scale as the policy learns), nor a Q-learning TD error's (its targets are the
    network's own estimates, Sutton & Barto 2018, section 6.5). The curve's reading is kept as information;
    a loss that turned non-finite still fails."""
    policy = policy_gradient(w) is not None
    if verdict.status in ("warn", "fail") and w.probe.game is None and not policy and \
            value_regression(w) and not str(verdict.value).startswith(("not finite", "too high: loss became")):
        return type(verdict)(verdict.check, "info", f"{verdict.value}; not judged: the loss regresses one chosen "
                             "output per row (a Q-learning TD error on Q(s, a) at the actions taken, whose targets "
                             "move as the network learns)", verdict.expected, "a temporal-difference loss rises "
                             "and spikes as values propagate and the target network is updated: judge the "
                             "agent by its returns")
    if (w.probe.game is None and not policy) or verdict.status not in ("warn", "fail"):
        return verdict
    if w.probe.game is None:
        return type(verdict)(verdict.check, "info", f"{verdict.value}; not judged: the loss weighs the "
                             "log-probabilities of the model's own samples by returns or advantages (a policy "
                             "gradient)", verdict.expected,
                             ll.PG_ADVICE)
    return type(verdict)(verdict.check, "info", f"{verdict.value}; not judged: {w.probe.game}",
                         verdict.expected, "a game's loss is not read like a supervised one: judge the players "
                         "by what they produce (samples, the other player's accuracy)")

def policy_gradient(w) -> str | None:
    """How the loss read as a policy gradient (its loss graph's signed weights on picked log-probabilities, or its
    gradient's: :mod:`~trainwell.doctor.policy_terms`), None when it did not."""
    if w._policy.found is not None:
        return w._policy.found
    if any(s["form"] == "signed_weights" for s in w.probe.steps):
        return "the loss's gradient weighs the model's own samples by advantages of both signs (a policy gradient)"
    return None


def value_regression(w) -> bool:
    """On two thirds of the observed steps (two at least) the loss reached one output per row, of varying
    column and size (:func:`~trainwell.doctor.loss_form.one_output_per_row`): a value-based agent's TD loss."""
    steps = w.probe.steps
    return len(steps) >= 2 and 3 * sum(bool(s.get("one_output")) for s in steps) >= 2 * len(steps)

def flat_direction(w, verdict):
    """A flat loss curve cannot say which way the rate is off; the observed steps' update/weight ratios can
    (cs231n: ~1e-3 is healthy): more than 10x below it the steps are too small to move the loss, more than
    10x above it they jump. With a healthy ratio and no progress the rate is not the cause: the inputs may
    carry nothing about the targets (labels shuffled apart from their inputs), which the advice asks first.

    A slow, steady fall under 5% (:data:`~trainwell.doctor.curve_reading.SLOW_SMALL_FALL`) stays "too low" where
    the ratio agrees, below cs231n's healthy ~1e-3 (the steps are short); at or above it the steps are not short,
    and a fall that small is no sign of a low rate (a network slowly memorizing labels that its inputs do not
    determine draws it at any rate): it is read as flat, with the advice above."""
    value = str(verdict.value)
    slow = value.startswith(SLOW_SMALL_FALL)
    if not value.startswith("flat") and not slow:
        return verdict
    ratios = observed_ratios(w)  # the tensors that moved (optimizers stepped in turn)
    median = ratios[len(ratios) // 2] if ratios else None
    if slow:
        if median is None:
            return verdict
        if median < HEALTHY_RATIO:
            return type(verdict)(verdict.check, verdict.status, f"{value}; update/weight {median:.2g} (healthy "
                                 "~1e-3)", verdict.expected, verdict.advice)
        verdict = flat_verdict(verdict.check, value[len(SLOW_SMALL_FALL) + 2 :])
    contrastive = flat_at_floor(verdict, w._contrastive, w.losses)
    if contrastive is not None:
        return contrastive
    if median is None:
        return verdict
    # the middle tensor on the side judged (an even count has two), as the monitor reads it: one of a small model's
    # two weights outside the band does not say which way the rate is off
    low, high = ratios[(len(ratios) - 1) // 2], ratios[len(ratios) // 2]
    median = math.sqrt(low * high)  # the two middles' geometric mean: the one middle with an odd count
    if high < FLAT_RATIO_BAND[0]:
        advice = f"the update/weight ratio is {high:.2g}, {_gap(high)}: raise the learning rate {rate_factor(high)}"
    elif low > FLAT_RATIO_BAND[1]:
        advice = f"the update/weight ratio is {low:.2g}, {_gap(low)}: lower the learning rate {rate_factor(low)}"
    else:
        advice = (f"the update/weight ratio is {median:.2g}, near the healthy ~1e-3: if the inputs carry nothing "
                  "about the targets the loss stays flat at any rate (are x and y shuffled with one "
                  "permutation?); else try the learning rate 10x larger and 10x smaller, and look for dead "
                  "units, a detached graph or frozen parameters")
    return type(verdict)(verdict.check, verdict.status, f"{verdict.value}; update/weight {median:.2g}",
                         verdict.expected, advice)


def rate_factor(ratio: float) -> str:
    """The factor to change the rate by, from the measured update/weight ``ratio``: the steps scale with the rate
    (SGD's, momentum's and Adam's alike), so the factor that brings the ratio to cs231n's healthy ~1e-3 is the gap
    itself; the advice names the range from a third of it (a first try that cannot overshoot) up to it:
    ``(by 13-40x)`` for a ratio of 2.5e-5. Read by :func:`~trainwell.doctor.rate_numbers.with_rate`."""
    if not ratio > 0 or not math.isfinite(ratio):  # no step moved a weight: no gap to measure
        return "(by 10x)"
    gap = max(ratio / HEALTHY_RATIO, HEALTHY_RATIO / ratio)
    return f"(by {_plain(gap / 3)}-{_plain(gap)}x)"


def _plain(x: float) -> str:
    """``x`` to two significant digits, without an exponent (``1500``, ``13``, ``3.3``)."""
    return f"{float(f'{x:.2g}'):.12g}"


def _gap(ratio: float) -> str:
    """How far ``ratio`` lies from the healthy ~1e-3, in words: ``40x below the healthy ~1e-3``."""
    if not ratio > 0 or not math.isfinite(ratio):
        return "no step moved the weights" if ratio == 0 else "not finite"
    gap = max(ratio / HEALTHY_RATIO, HEALTHY_RATIO / ratio)
    return f"{_plain(gap)}x {'below' if ratio < HEALTHY_RATIO else 'above'} the healthy ~1e-3"


def memorizing_now(w) -> bool:
    """The last recorded validation loss is over twice the training loss of the steps before it."""
    history = w._history(None)
    return bool(history) and history[-1]["val_loss"] > 2 * history[-1]["train_loss"] + 1e-3

def epochs_seen(w) -> int:
    """The epochs the loop ran, as far as the watch tells: its ``w.validate`` calls, or the passes over the dataset
    of a DataLoader iterated most often."""
    passes = Counter(dataset for dataset, _ in w._samplers.starts)
    return max(len(once_each(w._val)), max(passes.values(), default=0))


def group_rates(p) -> list[list[float]]:
    """Every param group's rate at each step (the first group's alone when it is the only one)."""
    if not p.group_lrs:
        return [p.lrs]
    width = max(len(row) for row in p.group_lrs)
    return [[row[i] if i < len(row) else math.nan for row in p.group_lrs] for i in range(width)]


def idle_plateaus_of(w) -> list:
    """The ``ReduceLROnPlateau`` schedulers of the watched optimizers that the code asking for the report holds and
    that were never stepped while watched (:func:`~trainwell.doctor.unstepped_schedulers.idle_plateaus`)."""
    return idle_plateaus(w._plateaus_now, set(w._plateaus.calls))


def loss_verdict(w, first: float | None):
    """``loop: loss``: the loss's form and scale read on the observed steps, or, where the watch began after the
    loop's first step (``trainwell watch``), a static loss scale ``.grad`` still held at that step
    (:class:`~trainwell.doctor.script_first_step.FirstStep`: by the second step a run it made diverge reads
    otherwise)."""
    p = w.probe
    own = ll.cosine_scores(ll.loss_scale(p, first, any(not y.is_floating_point() for y in w._ys)), p,
                           w._first_forward)
    if own.status == "pass":
        own = unscaled_cosine(p, w._first_forward) or own
    scaled = w.first_step.scale_verdict(isinstance(p.optimizer, ADAPTIVE)) if w.first_step is not None else None
    return own if scaled is None or "static loss scale" in str(own.value) else scaled


def batch_rows(forward) -> int | None:
    """The rows of a forward's first tensor (``forward``: its (args, kwargs)), None without one."""
    first = first_tensor(*forward) if forward is not None else None
    return len(first) if first is not None and first.dim() else None


def loop_verdicts(w) -> list:
    """What the loop did (:mod:`trainwell.doctor.loop_verdicts`)."""
    p = w.probe
    losses = w.losses
    # the loop's first loss (trainwell watch: of its first step, read before the watch began)
    first = w.first_step.value if w.first_step is not None else losses[0] if losses else None
    # the widest output of the observed steps: a multi-task model's heads differ (a 2-class head read first, the
    # 10-class head's labels later)
    classes = max((s["classes"] for s in p.steps if s["classes"]), default=None)
    soft = bool(p.steps) and all(s["zero_sum"] for s in p.steps)  # a loss of softmax(outputs)
    if classes is None and soft and p.steps[0]["first_logits"] is not None:
        # the output width is the class count only under a softmax loss (not an embedding's, an ordinal
        # model's K - 1 cumulative logits)
        z = p.steps[0]["first_logits"]
        classes = z.shape[-1] if z.dim() >= 2 else None
    sample = w._echo_sample  # targets equal to a floating-point input, or to token ids
    echo = loop_echo if sample is None or sample[3][sample[2]].is_floating_point() else loop_copied_tokens
    # an optimizer created again in the loop: what the given one's steps then look like defers to it
    rebuilt = w._optimizer_builds.verdict(w._calls, [d for d, _ in w._samplers.starts])
    stepped = rebuilt or lv.stepped(p, w._calls)
    out = [lv.unregistered_verdict(p.unregistered), stepped, lv.optimizer_ownership(p),
           nonpositive_max_norm(w._clips) or lv.gradient_flow(p),
           constant_only(w, w._leaf_losses.explain(lv.gradient_reach(p, w._reentrant_cut))),
           weight_decay_pull.weight_decay(p), lv.module_mode(p),
           w._scheduler_steps.verdict([*w._given, *p.optimizers], p.model.parameters(), p.lrs) or
           unstepped_verdict([*w._given, *p.optimizers], epochs_seen(w), p.lrs) or
           unstepped_plateaus(idle_plateaus_of(w), epochs_seen(w), p.lrs) or
           w._builds.verdict(p.lrs, p.validation_steps, w._samplers.starts) or
           stuck_warmup(group_rates(p), p.start_lrs, [g.get("initial_lr") for g in p.optimizer.param_groups]) or
           growing_gamma(w._scheduler_steps.stepped.values(), [*w._given, *p.optimizers], p.lrs) or
           lsch.lr_schedule(p, losses, lambda group: w._lambdas.factor_peak(w._state.optimizer, group),
                            w._builds.epochs(),
                            lambda: steep_gamma_advice(w._scheduler_steps.stepped.values(),
                                                       [*w._given, *p.optimizers])),
           w._plateaus.verdict(w._state.optimizer, losses, [m[1] for m in w._val]),
           loss_verdict(w, first), ll.output_layer(p),
           low_precision_weights(p), ld.inputs(p, memorizing_now(w)),
           w._samplers.verdict(), w._restores.verdict(), w._clips.verdict([s["grad_norm"] for s in p.steps]),
           w._shared.verdict(), w._fresh.verdict(),
           ld.parts_of_targets({k: [t.cpu() for t in v] for k, v in w._parts.items() if v}, p.output_shapes,
                               wider_than_labels(ld.labels(
                                   [y.cpu() for y in w._ys], classes, w._broadcast or w._loss_inputs.broadcast_found,
                                   soft=soft, against=[a for a in w._against if a is not None],
                                   contexts=w._y_contexts, game=p.game if p.asks_other_player else None,
                                   policy=policy_gradient(w),
                                   tokens=ld.scores_its_own_inputs(p.model, p.mode_sample, classes),
                                   aligned=not w._ys or not p.steps or
                                   ld.position_aligned(p.steps[0]["first_logits"], w._ys[0])),
                                   [y.cpu() for y in w._ys], p.steps, p.multi_output, first)),
           ld.single_example_batches(p), p.norm_values.verdict(), p.split_inputs.verdict(),
           p.split_rows.verdict(ld.full_batch_masked(p)), p.row_labels.verdict(),
           w._label_columns.verdict(), detached_outputs(p.steps), flat_outputs(p.steps, losses),
           None if stepped is not None and stepped.status in ("warn", "fail") else
           once_per_epoch(p.steps, p.opt_steps, epochs_seen(w)),
           dropped_batches(p.dropped_forwards, p.game),
           echo(p, w._echoes, sample),
           inverted_weights(p.steps, [y.cpu() for y in w._ys]),
           smoothed_twice(p.steps) or w._loss_inputs.smoothing_verdict(),
           inverted_pos_weight(p.pos_weight_reads, [y.cpu() for y in w._ys], CLASS_WEIGHTS),
           tied_rows_verdict(p.steps),
           same_order(w._ys, w._calls, [m[0] for m in w._val], w._shuffles.count),
           p.random_states.verdict(),
           loop_doubled_skips(p, w._first_forward), loop_norm_groups(p, w._first_forward),
           loop_inverted_mask(p, w._first_forward), loop_padding_idx(p.model, w._first_forward),
           loop_sequence_first(p, w._first_forward, w._first_targets),
           loop_batch_mixing(p, w._first_forward, w._first_targets),
           loop_flattened_batch(p, w._first_forward),
           satisfied_at_start(losses),
           dropout_rate_verdict(p.model, "loop: dropout rate"),
           batchnorm_momentum_verdict(p.model, "loop: batchnorm momentum"), adam_settings(p.optimizers),
           stale_statistics(p.model, w._copies_now, w._start_sums),
           w._loss_inputs.verdict(losses), w._loss_inputs.pairs_verdict(), w._kept.verdict(), p.kept_outputs.verdict(),
           p.validation_graphs.verdict(), paired_elsewhere(w._pairings, bool(w._mixups.reads)), w._mixups.verdict(),
           empty_epochs([m[0] for m in w._val], len(w._losses)), w._inits.verdict(),
           binary_targets_verdict(w._bce_targets),
           w._val_losses.verdict([h["train_loss"] for h in w._history(None, once=False)]),
           unseen_classes(w._classes.seen(),
                          [] if w._val_losses.class_counts is None else [w._val_losses.class_counts]),
           relabelled(w._val_losses.confusion, w._classes.seen(), w._val_losses.confusion_pixels) or
           unrelated(w._val_losses.first_confusion, w._val_losses.confusion, w._hits) or
           class_shift(w._classes.counts(), w._val_losses.confusion),
           augmented_validation(p.validation_draws.row_keys(), w._val_losses.targets, p.validation_draws.shapes,
                                w._val_losses.target_kinds, w._val_losses.target_positions,
                                p.validation_draws.batch_keys()),
           probability_log_verdict(w._log_form, losses), zero_root_verdict(w._zero_root), w._pads.verdict(),
           trained_symmetry(p.model, p.optimizers, p.opt_steps) or
           constant_init_verdict(w.first_step.constant if w.first_step is not None else w._constant, p.model),
           ignored_class_call(w._loss_inputs.training_call, batch_rows(w._first_forward)),
           own_argmax_targets(w._loss_inputs.training_call), batch_standardized(w._loss_inputs.standardized),
           nonfinite_start(p.nonfinite_at_start, len(p.named)),
           probability_targets_verdict(w._loss_inputs.training_call.row_sums),
           *loop_wiring(p, w._first_forward),
           positive_verdict(w.first_step.positive if w.first_step is not None else w._positive, p.model),
           wide_verdict(w.first_step.wide if w.first_step is not None else w._wide, p.model),
           unmatched_labels(w, observed_ratios(w))]
    if p.game is None and policy_gradient(w) is None:  # they need not fall
        out.append(unbounded_fall(losses))
    return [v for v in out if v is not None]
