"""Pre-flight check: the model does better with its inputs than any input-independent model (Karpathy's
recipe: an input-independent baseline)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.budget import TIME_BUDGET_S
from trainwell.doctor.dominant_term import dominant_inner_term
from trainwell.doctor.fitting import _free_outputs, _train_copy
from trainwell.doctor.forward import _accuracy, _training_forward
from trainwell.doctor.homogeneous import positively_homogeneous
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.loss_kinds import _scalar, reads_class_scores
from trainwell.doctor.neighbour_classes import nearest_classes
from trainwell.doctor.neighbour_targets import neighbour_loss
from trainwell.doctor.rate_retry import retry_rate
from trainwell.doctor.targets import far_from_unit
from trainwell.doctor.verdict import Verdict


def input_independent_baseline(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor,
                               loss_fn: Callable = F.cross_entropy, steps: int = 100, lr: float = 1e-2,
                               n: int = 256, seed: int = 0, holdout: float = 0.25,
                               stop_when_shown: bool = True, retry: bool = True) -> Verdict:
    """Train a copy on real inputs; at its best it must reach a clearly lower loss on *held-out* examples than the
    best any input-independent model can (Karpathy's recipe: the model must be using its input).

    The input-independent model is the best constant output, fitted directly (what a copy trained on zeroed
    inputs converges to). The real copy's held-out loss is read every 5 steps and the best kept (with its
    accuracy): a small subset is soon overfitted, and an overconfident model's held-out loss then climbs past the
    prior's although its inputs carry signal. A model that fits its training examples better with its inputs but
    shows no clear held-out gain is a warning, not a failure: memorization and too few examples to show
    generalization (an MLP on 192 MNIST-1D examples) look the same on a few dozen held-out examples. Comparing
    training losses is not enough: a model that memorizes labels shuffled
    against the inputs uses the inputs as an address, reaches a lower training loss, and has learned nothing; on
    held-out examples it is never better than the class prior. With fewer than 16 examples nothing is held out
    and the verdict says so. The constant output needs no input at all, so with several inputs (token ids and a
    mask, two towers) or integer ones nothing has to be zeroed or replaced: every input is held out at once.

    The criterion is met once and for all by the best checkpoint so far, so with ``stop_when_shown`` (the default)
    training stops at the first check that meets it: a model that uses its inputs passes after a few dozen steps
    instead of all of them (on the default MNIST-1D CNN this check was most of the pre-flight's time), and a model
    that does not trains every step, as before. The verdict is the same either way.

    With a large majority class the accuracy margin above cannot be met on a few dozen held-out examples (90% +
    3 standard errors is over 100%): the class predictions of every checkpoint are also tested against the
    held-out labels shuffled among the examples (a permutation test, which conditions on the class balance: a
    model answering the majority class everywhere agrees by chance only), the best checkpoint's p-value adjusted
    for the distinct checkpoints tested by the permutation distribution of the best of them (Westfall and Young's
    min-p: checkpoints that predict alike count as about one test). Labels independent of the inputs agree by
    chance only, however long the copy trains. A model that outputs an embedding under a loss that reads class
    labels but no class scores (a triplet or contrastive loss) predicts each held-out example's class by its nearest
    training example (:mod:`~trainwell.doctor.neighbour_classes`): its held-out loss (a batch-hard triplet loss's
    hardest pairs over the set) need not fall below the constant's margin while its embedding sorts the classes.
    Those count only when its training loss fell clearly below the constant's: a random embedding already sorts
    inputs by their similarity, which a loss that teaches nothing (a margin of 0) leaves as it is.

    A copy whose loss kept jumping back up, or that ended no better on its own training examples than the constant,
    is trained once more at a tenth of the rate (``retry``; :mod:`~trainwell.doctor.rate_retry`: a SIREN's sines
    take far smaller steps); the verdict at that rate stands only when it passes.
    """
    xs, ys = x[:n], y[:n]
    if not any(p.requires_grad for p in model.parameters()):
        return Verdict("input-independent baseline", "skip", "skipped: no trainable parameters", "-", "")
    k = int(len(xs) * holdout) if len(xs) >= 16 else 0
    train, held = _split(ys, k, seed)

    predicted: dict[tuple, torch.Tensor] = {}  # each distinct vector of held-out class predictions
    neighbours: dict[tuple, torch.Tensor] = {}  # the same, by an embedding's nearest training examples

    def held_out(m: nn.Module, out=None) -> tuple[float, float | None]:
        trained = (lambda: (call(m, xs[train]), ys[train])) if out is None else None  # a checkpoint's
        out = call(m, xs[held]) if out is None else out
        classes, near = _held_out_classes(out, ys[held], loss_fn, trained)
        if classes is not None:
            (neighbours if near else predicted).setdefault(tuple(classes.tolist()), classes)
        return _scalar(loss_fn(out, ys[held])), _accuracy(out, ys[held], loss_fn)

    best = {"loss": math.inf, "acc": None}
    const = _free_outputs(model, xs[train], ys[train], loss_fn, per_example=False)
    zero_held = zero_acc = None
    if k:
        with torch.no_grad():
            zero_held, zero_acc = held_out(model, const(k))
        predicted.clear()  # the constant's answers are not the model's

    def watch(m: nn.Module) -> bool:  # the checkpoint with the best held-out loss, and its accuracy
        loss, acc = held_out(m)
        if loss < best["loss"]:
            best["loss"], best["acc"] = loss, acc
        return stop_when_shown and _shown(best, k, zero_held, zero_acc)

    trace: list[float] = []
    m, _ = _train_copy(model, xs[train], ys[train], loss_fn, steps, lr, seed, every=5 if k else 0,
                       watch=watch if k else None, budget_s=TIME_BUDGET_S, trace=trace)
    _training_forward(m)
    with torch.no_grad():
        real_train = _scalar(loss_fn(call(m, xs[train]), ys[train]))
        zero_train = _scalar(loss_fn(const(len(ys[train])), ys[train]))
        if k:
            watch(m)
    floor = None if not k or _shown(best, k, zero_held, zero_acc) else _held_out_floor(model, xs[held], ys[held],
                                                                                         loss_fn, zero_held)
    # an embedding's nearest neighbours sort inputs by similarity before any training: they count once the loss
    # taught something (a margin of 0 teaches nothing)
    tested = [*predicted.values(), *(neighbours.values() if _clearly_below(real_train, zero_train) else ())]
    agreement = None if _shown(best, k, zero_held, zero_acc, floor) else _agreement(tested, ys[held])
    verdict = _judge(real_train, zero_train, k, best, zero_held, zero_acc, agreement, floor)
    slower = retry_rate(lr, trace, stuck=real_train >= zero_train) if retry and verdict.status in ("warn", "fail") \
        else None
    if slower is not None:  # the copy's loss kept jumping back up: a rate too high for this model (a SIREN's)
        again = input_independent_baseline(model, x, y, loss_fn, steps, slower, n, seed, holdout, stop_when_shown,
                                           retry=False)
        if again.status == "pass":
            again.value = (f"{again.value}; at Adam's rate {slower:g} (at {lr:g} the copy's loss kept jumping back "
                           "up: a rate too high for this model)")
            return again
    if verdict.status == "fail" and max(zero_train, zero_held or 0.0) <= 1e-6 and \
            out_of_reach(real_train, zero_train) and not _reads_targets(loss_fn, const(len(ys)), ys):
        return _implied_targets(real_train, zero_train)
    if verdict.status == "fail" and max(zero_train, zero_held or 0.0) <= 1e-6 and \
            not _reads_targets(loss_fn, const(len(ys)), ys) and _nonzero(const(1)) and \
            positively_homogeneous(model, xs):
        return _out_of_homogeneous_reach(real_train, zero_train)
    verdict = _sparse_examples(verdict, xs, ys, train, held, loss_fn, zero_held, floor)  # too few to interpolate
    if verdict.status in ("warn", "fail"):  # a term on mid-network outputs that pulls every example to one output
        verdict.advice = dominant_inner_term(model, xs[train], ys[train], loss_fn, seed) or verdict.advice
    targets = far_from_unit(ys) if verdict.status != "pass" else None
    if targets and _starts_at_offset(model, xs, ys):  # a global bias set to the mean: no offset left to learn
        targets = None
    if targets:  # a copy whose outputs start near 0 spends its few steps learning the targets' offset
        verdict.advice = (f"{targets}: a copy whose outputs start near 0 spends its steps learning their offset; "
                          f"else {verdict.advice}")
    return verdict


def _starts_at_offset(model: nn.Module, x: torch.Tensor | Inputs, y) -> bool:
    """Whether the model's first outputs already sit at the targets' offset (their mean within one std of the
    targets' mean: a recommender's global bias initialized to the mean rating), so no copy spends its steps
    learning it; False when the outputs are not one tensor of the targets' size."""
    if not isinstance(y, torch.Tensor) or not y.is_floating_point():
        return False
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            out = call(_training_forward(copy.deepcopy(model)), x)
    except Exception:  # noqa: BLE001 - a forward this reading cannot follow: the advice stands
        return False
    if not isinstance(out, torch.Tensor) or out.numel() != y.numel():
        return False
    return abs(float(out.double().mean()) - float(y.double().mean())) < float(y.double().std())


def _sparse_examples(verdict: Verdict, xs, ys, train, held, loss_fn: Callable, zero_held: float | None,
                     floor: float | None) -> Verdict:
    """``verdict`` as information where it warns (training examples fitted, no held-out gain) and each held-out
    example's nearest training example predicts its target clearly better than the constant
    (:mod:`~trainwell.doctor.neighbour_targets`): the targets follow the inputs, and the model does not
    interpolate between the subset's examples; else ``verdict`` itself."""
    near = neighbour_loss(xs[train], ys[train], xs[held], ys[held], loss_fn) \
        if verdict.status == "warn" and isinstance(xs, torch.Tensor) and zero_held is not None else None
    if near is None or not _clearly_below(near[0], zero_held, floor):
        return verdict
    k = len(ys[held])
    kept = len(ys) - k
    loss, distance = near
    return Verdict(verdict.check, "info", f"{verdict.value}; each held-out example's nearest training example "
                   f"predicts its target with loss {loss:.3g} (median distance {distance:.3g}): the targets follow "
                   "the inputs, the model does not interpolate between these examples", verdict.expected,
                   f"the subset's {kept} training examples lie further apart than the model's detail: a "
                   "coordinate network on Fourier features of a large scale (or any model of fine detail) oscillates "
                   "between sparse examples; judge generalization on held-out examples as dense as the training "
                   f"set's, and if it fails there too, lower the features' scale ({k} held out here)")


def _split(y, k: int, seed: int) -> tuple:
    """The training and held-out examples of a batch: the last ``k`` held out, or, when those hold one target
    value while the batch holds several (a batch put together class by class: a discriminator's real images, then
    its fakes), ``k`` drawn at random (seeded), each part in the batch's order, so the held-out part is not a class
    the training part barely shows."""
    n = len(y)
    if not k:
        return slice(0, n), slice(n, n)
    tail = y[n - k :] if isinstance(y, torch.Tensor) else None
    if tail is None or not bool((tail == tail[:1]).all()) or bool((y == y[:1]).all()):
        return slice(0, n - k), slice(n - k, n)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[: n - k].sort().values, order[n - k :].sort().values


#: a constant output that drives the loss below minus this finds a loss without a lower bound (not a baseline)
UNBOUNDED = 1e6

#: the chance, over all checkpoints tested, that labels independent of the inputs pass the permutation test
AGREEMENT_ALPHA = 0.01


def _predicted_classes(out, y: torch.Tensor, loss_fn: Callable) -> torch.Tensor | None:
    """The predicted class of each example when ``out`` holds (N, C) class scores for (N,) class labels; None
    otherwise (regression, per-position or many-label targets, a loss that reads no class scores)."""
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.dim() != 1 or \
            not reads_class_scores(loss_fn, out, y):
        return None
    logits = O.logits(out)
    if logits is None or logits.dim() != 2 or logits.shape[1] < 2 or len(logits) != len(y):
        return None
    return logits.argmax(1)


def _held_out_classes(out, y: torch.Tensor, loss_fn: Callable,
                      trained: Callable[[], tuple] | None) -> tuple[torch.Tensor | None, bool]:
    """The held-out class predictions and whether they are an embedding's: the argmax of class scores
    (:func:`_predicted_classes`), else, for an embedding trained with class labels, each example's nearest training
    example's label (``trained``: the checkpoint's training outputs and labels, None for the constant's outputs)."""
    classes = _predicted_classes(out, y, loss_fn)
    if classes is not None or trained is None:
        return classes, False
    with torch.no_grad():
        return nearest_classes(out, *trained()), True


def _agreement(predictions: list[torch.Tensor], y: torch.Tensor, draws: int = 20_000,
               seed: int = 0) -> tuple[float, int] | None:
    """(p, tested): the one-sided permutation p-value of the number of held-out examples whose predicted class is
    their label, for the best of the distinct prediction vectors that name more than one class, adjusted for how
    many were tested by the permutation distribution of that best (Westfall and Young's min-p: each shuffle of the
    labels is scored against every checkpoint at once, so checkpoints that mostly agree with each other count as
    about one test, where Bonferroni's correction would count each in full); None when none was, and for several
    targets (a tuple or dict: no one tensor of labels). Negative labels (``ignore_index=-100``) are left out."""
    if not isinstance(y, torch.Tensor):
        return None
    keep = y >= 0
    tested = [p[keep] for p in predictions if len(set(p[keep].tolist())) > 1]
    labels = y[keep]
    if not tested or len(labels) < 2:
        return None
    g = torch.Generator().manual_seed(seed)
    shuffled = labels[torch.rand(draws, len(labels), generator=g).argsort(1)]
    null = torch.stack([(p[None] == shuffled).sum(1) for p in tested], 1)  # (draws, checkpoints): agreements
    seen = torch.stack([(p == labels).sum() for p in tested])  # (checkpoints,)
    return min_p_adjusted(null, seen), len(tested)


def min_p_adjusted(null: torch.Tensor, seen: torch.Tensor) -> float:
    """Westfall and Young's min-p adjusted p-value of the best of several one-sided tests that share their
    permutations: ``null`` (draws, tests) holds each test's statistic under each permutation, ``seen`` (tests,)
    the observed ones, all counts (integers >= 0; larger is more extreme). Each statistic is turned into its own
    permutation p-value (the observed one counted in), and the smallest observed p is ranked among the smallest p
    of each permutation."""
    draws, top = len(null), int(max(int(null.max()), int(seen.max()))) + 1
    # at_least[t, v]: how many draws of test t reach v or more
    at_least = torch.stack([torch.bincount(col, minlength=top).flip(0).cumsum(0).flip(0) for col in null.T])
    p_null = (at_least.gather(1, null.T.long()) + 1).double() / (draws + 1)  # (tests, draws)
    p_seen = (at_least.gather(1, seen.long()[:, None])[:, 0] + 1).double() / (draws + 1)
    return (int((p_null.min(0).values <= p_seen.min()).sum()) + 1) / (draws + 1)


def _margin(zero_acc: float, k: int) -> float:
    """Three binomial standard errors of the constant's held-out accuracy on ``k`` examples."""
    return 3 * math.sqrt(max(zero_acc * (1 - zero_acc), 0.05) / k)


def _shown(best: dict, k: int, zero_held: float | None, zero_acc: float | None, floor: float | None = None) -> bool:
    """Whether the best checkpoint so far beats the input-independent model on the held-out examples: a clearly
    lower loss (measured from ``floor``, the lowest loss any outputs reach there, when given), or (for a
    classifier) a clearly higher accuracy."""
    if not k or zero_held is None:
        return False
    ok = _clearly_below(best["loss"], zero_held, floor)
    if zero_acc is not None and best["acc"] is not None:
        ok = ok or best["acc"] > zero_acc + _margin(zero_acc, k)
    return ok


def _clearly_below(loss: float, reference: float, floor: float | None = None) -> bool:
    """``loss`` at least 10% of ``reference``'s size below it (0.9 x reference for a positive loss; a negative
    loss, which some losses reach by design, must fall further below zero, not towards it). Given the ``floor``
    no outputs go below (a positive one: BCE on soft targets is their entropy, a VAE's loss its reconstruction's),
    10% of the way from ``reference`` down to it: only that gap is the inputs' to close."""
    if floor is not None and 0 < floor < reference:
        return loss < reference - 0.1 * (reference - floor)
    return loss < reference - 0.1 * abs(reference)


def _held_out_floor(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable,
                    reference: float) -> float | None:
    """The lowest loss any outputs reach on the held-out examples (free outputs fitted to them directly, as the
    overfit check's floor); None when the fit fails or does not come below ``reference``."""
    try:
        floor = _scalar(loss_fn(_free_outputs(model, x, y, loss_fn, per_example=True)(len(y)), y))
    except Exception:  # noqa: BLE001 - a loss whose free outputs cannot be fitted: the plain ratio stands
        return None
    return floor if math.isfinite(floor) and floor < reference else None


def _judge(real_train: float, zero_train: float, k: int, best: dict, zero_held: float | None,
           zero_acc: float | None, agreement: tuple[float, int] | None = None, floor: float | None = None) -> Verdict:
    """The verdict from the training losses (real inputs vs the best constant output) and, with ``k`` held-out
    examples, the real copy's best held-out loss and its accuracy there (``best``) vs the constant's, and the
    permutation test of its held-out class predictions (``agreement``: p-value, checkpoints tested)."""
    fits = _clearly_below(real_train, zero_train)
    if not k:
        ok = fits
        value = (f"training loss: real {real_train:.3g} vs input-independent {zero_train:.3g} (too few examples to "
                 f"hold out)")
    else:
        # an overconfident classifier's loss can stay near the prior's while it classifies far better than the
        # prior: held-out accuracy (at the best-loss checkpoint, not the best of many) above the constant's by
        # three binomial standard errors also counts as signal (_shown)
        ok = _shown(best, k, zero_held, zero_acc, floor) or agreement is not None and agreement[0] < AGREEMENT_ALPHA
        value = (f"held-out loss: real {best['loss']:.3g} (best over training) vs input-independent {zero_held:.3g}"
                 f" ({k} examples)")
        if floor is not None and floor > 0:
            value += f", the lowest any outputs reach there {floor:.3g}"
        if zero_acc is not None and best["acc"] is not None:
            value += f"; held-out accuracy there: real {best['acc']:.1%} vs input-independent {zero_acc:.1%}"
        if agreement is not None:
            value += (f"; class predictions vs held-out labels shuffled: p = {agreement[0]:.2g}, adjusted over "
                      f"{agreement[1]} distinct checkpoint(s) (signal below {AGREEMENT_ALPHA:g})")
        value += f"; training loss: real {real_train:.3g} vs input-independent {zero_train:.3g}"
    if ok:
        advice = ""
    elif fits and k:
        advice = ("memorization, or too few examples to show signal: the inputs help on the training examples "
                  "only; are the labels aligned with the inputs (shuffled separately?), or is there too little data "
                  "to generalize?")
    elif max(zero_train, zero_held or 0.0) <= 1e-6 and math.isfinite(zero_train):
        advice = ("one output for every input already reaches a loss of 0, so the loss has nothing to teach: a "
                  "margin of 0 in a triplet or ranking loss (every constant embedding meets it), or targets the "
                  "constant already matches?")
    else:
        advice = ("the model does no better with its inputs than without: is the input connected, normalized, and "
                  "aligned with the labels?")
    status = "pass" if ok else ("warn" if fits and k else "fail")
    if status == "fail" and zero_train < -UNBOUNDED:  # no input-independent model is a baseline for such a loss
        status, value = "skip", (f"skipped: one output for every input drives the loss to {zero_train:.3g}: it has "
                                 f"no lower bound; {value}")
        advice = ("a policy gradient's -log p(action) x advantage has none, by design (judge the agent by its "
                  "returns); a supervised loss should: see the overfit check, which names a loss that falls "
                  "without bound (a missing minus sign)")
    if status == "pass" and not all(math.isfinite(v) for v in (real_train, zero_train, zero_held or 0.0)):
        status, advice = "skip", "a loss that is not finite cannot show signal: see the initial loss"
        value = "skipped: not finite: " + value
    return Verdict("input-independent baseline", status, value,
                   "real inputs reach a clearly lower held-out loss (< 0.9 x the best input-independent model; 10% "
                   "of the way down to the lowest loss any outputs reach when that is above 0), a "
                   "clearly higher held-out accuracy (by 3 standard errors) or class predictions that agree with the "
                   f"held-out labels beyond chance (permutation p < {AGREEMENT_ALPHA:g})",
                   advice)


def out_of_reach(real_train: float, zero_train: float) -> bool:
    """Whether the real copy's training loss stays far above the loss of ~0 that the best constant output reaches
    (over 1000x it and above 1e-3)."""
    return math.isfinite(real_train) and real_train > max(1e-3, 1000 * zero_train)


def _reads_targets(loss_fn: Callable, out, y) -> bool:
    """Whether the loss's value depends on the targets it is given (the same outputs scored against ``y`` + 1); a
    loss that refuses them, or several targets (a tuple or dict), counts as reading them."""
    if not isinstance(y, torch.Tensor):
        return True
    try:
        with torch.no_grad():
            return _scalar(loss_fn(out, y)) != _scalar(loss_fn(out, y + 1))
    except Exception:  # noqa: BLE001 - targets the loss checks (class indices out of range): it reads them
        return True


def _implied_targets(real_train: float, zero_train: float) -> Verdict:
    """The skip for a loss that reads no targets and that one free constant output drives to ~0 while the model's
    own outputs stay far above it: each output's position fixes what it must be (skip-gram's positive score high,
    its negative scores low), a constant the model's structure need not be able to produce (both are dot products of
    the same embeddings), so it is no baseline to beat; a loss with nothing to teach (a triplet margin of 0) reads
    its labels."""
    return Verdict("input-independent baseline", "skip",
                   f"skipped: the loss reads no targets, and one output for every input drives it to "
                   f"{zero_train:.3g} while the model's own outputs stay at {real_train:.3g} on the examples it "
                   "trained on: that constant is out of the model's reach, so it is no baseline to beat",
                   "a loss whose targets an input-independent model can be compared on",
                   "outputs whose targets are fixed by their position (skip-gram's positive and negative scores, "
                   "made from the same embeddings) meet a free constant at once; judge the model on held-out pairs "
                   "instead (positives scored above negatives)")



def _nonzero(out) -> bool:
    """Whether a constant output holds any nonzero entry."""
    return any(isinstance(t, torch.Tensor) and t.is_floating_point() and bool(t.detach().any())
               for t in O.leaves(out))


def _out_of_homogeneous_reach(real_train: float, zero_train: float) -> Verdict:
    """The skip for a loss that reads no targets, met by one nonzero output for every input, on a positively
    homogeneous model (:mod:`~trainwell.doctor.homogeneous`: a bias-free ReLU network, Deep SVDD's), which cannot
    give one nonzero output for every input: that constant is no baseline it can be held to."""
    return Verdict("input-independent baseline", "skip",
                   f"skipped: the loss reads no targets, and one nonzero output for every input drives it to "
                   f"{zero_train:.3g} (the model's own outputs: {real_train:.3g} on the examples it trained on); the "
                   "model is positively homogeneous (its outputs double when its inputs do: a bias-free network), "
                   "so no constant other than 0 is in its reach, and that constant is no baseline to beat",
                   "a loss whose targets an input-independent model can be compared on",
                   "a one-class objective on a bias-free network (Deep SVDD, Ruff et al. 2018, whose centre c no "
                   "such network can output for every input): judge it on held-out anomalies instead")
