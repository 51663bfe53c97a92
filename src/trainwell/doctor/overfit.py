"""Pre-flight check: the model can overfit a tiny subset (Karpathy's recipe; cs231n)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.autoregressive_floor import OrderedFloor, autoregressive_floor
from trainwell.doctor.dominant_term import dominant_inner_term
from trainwell.doctor.double_sigmoid import sigmoid_in_logits_loss
from trainwell.doctor.dropout_off import dropout_off
from trainwell.doctor.fitting import _free_outputs, _train_copy, is_unit_norm
from trainwell.doctor.forward import _accuracy, samples_in_forward
from trainwell.doctor.frozen_features import fitting_head, narrow_frozen_features
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.loss_kinds import _scalar, loss_kind
from trainwell.doctor.low_dimensional import neighbour_loss, spread_rows
from trainwell.doctor.offset_start import at_target_offset
from trainwell.doctor.output_layer import bounded_scores
from trainwell.doctor.overfit_shortfall import shortfall
from trainwell.doctor.probability_floor import softmax_before_cross_entropy, softmax_inside_loss
from trainwell.doctor.rate_retry import retry_rate
from trainwell.doctor.tied_floor import held_above
from trainwell.doctor.verdict import Verdict

_REGRESSION = ("mse", "l1", "smooth_l1", "huber")
#: the regression losses whose gradient has a bounded size far from the targets (:mod:`~trainwell.doctor.offset_start`)
_BOUNDED_GRADIENT = ("l1", "smooth_l1", "huber")


def overfit_tiny_subset(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor,
                        loss_fn: Callable = F.cross_entropy, n: int = 20, steps: int = 300,
                        lr: float = 1e-2, seed: int = 0) -> Verdict:
    """Train a copy on ~20 examples with no regularization: the loss must approach its floor (a bug signal if not).

    The floor is the lowest loss any outputs can reach on these examples, fitted directly (0 for plain
    cross-entropy; the smoothed targets' entropy with label smoothing): the loss must close 90% of the gap from
    its start to the floor. Outputs with unit-norm rows (``F.normalize`` at the end of forward) are fitted on the unit
    sphere: a contrastive loss at temperature T then has logits within ±1/T and a floor far above 0. The trained
    copy is judged in eval mode and in train mode (seeded), the better of the two: with BatchNorm on 20 examples the
    running statistics lag the batch statistics the copy was fitted with.
    A failure names a bounding activation after the last layer (a Sigmoid or ReLU before cross-entropy) when
    there is one (:mod:`~trainwell.doctor.output_layer`). A floor that is cross-entropy's on probabilities (a
    softmax before it, :mod:`~trainwell.doctor.probability_floor`), or BCE with logits given sigmoid(outputs)
    (:mod:`~trainwell.doctor.double_sigmoid`), fails even when the loss reaches it.

    Without class scores to count (regression, a TD loss, a loss of unknown form) the gap is measured from the
    loss of the best constant output on these examples (one output for all of them, fitted: the targets' variance
    for MSE) when that is below the start: a model whose only learning part is a bias (every weight frozen, or an
    input that never reaches the output) reaches that constant and fails, however far from zero the targets sit.
    Judged so, the copy trains on while its loss keeps falling (:func:`_train_on`): outputs that start near 0 must
    first travel the targets' offset (raw units, around 10 or 1000); where it still misses after getting a quarter
    of the way below the constant (it learned from its inputs), a copy with its dropout off is fitted again
    (:mod:`~trainwell.doctor.dropout_off`: the recipe overfits with regularization off, and dropout's noise, which
    grows with the outputs, hides the fit of targets far from 0).
    With inputs of a few features (a 1-D curve) the examples are rows spread over the batch, and a regression is
    judged against its targets' noise where that is higher (:mod:`~trainwell.doctor.low_dimensional`): half the loss
    of each example given its nearest neighbour's fitted output, at most half the way from the constant's loss.

    A forward that samples (a VAE: two training-mode forwards of the same input differ) ties its outputs together
    through the noise, so the free-output floor is out of its reach: the copy trains until its loss stops falling
    (up to 5x the steps) and must undercut the best input-independent output (one output for all the examples) by
    a quarter of the gap from it to the floor, i.e. fit these examples from their inputs."""
    name = "overfit a tiny subset"
    xs, ys = spread_rows(x, y, n)
    if not any(p.requires_grad for p in model.parameters()):
        return Verdict(name, "skip", "skipped: no trainable parameters", "-", "")
    with torch.no_grad():
        first = call(copy.deepcopy(model).eval(), xs)
        start = _scalar(loss_fn(first, ys))
        counted = _accuracy(first, ys, loss_fn) is not None  # class scores: the accuracy judges the fit too
        # unit-norm outputs (F.normalize at the end of forward): the floor is the lowest loss on the unit sphere
        sphere = any(is_unit_norm(t) for t in O.leaves(first) if isinstance(t, torch.Tensor))
        several = not isinstance(first, torch.Tensor)  # a tuple, list or dict: outputs the model may tie together
        del first
    fitted = _free_outputs(model, xs, ys, loss_fn, per_example=True)
    floor = min(_scalar(loss_fn(fitted(len(xs)), ys)), _targets_as_outputs(loss_fn, ys))
    unknown = bool(getattr(fitted, "left_domain", False))
    # the lowest loss the fit met, even where the search went on to overflow (a KL term subtracted reaches -inf, then
    # NaN): far below where the loss started, the loss has no lowest value
    # the model's own outputs may be tied where free ones are not (a flow's z and log-determinant)
    held = held_above(model, xs, ys, loss_fn, start, floor, steps, lr, seed, several)
    unknown = unknown or held is not None
    if floor < min(start, 0.0) - 100 * (abs(start) + 1) and held is None:
        return Verdict(name, "warn", f"the loss falls without bound: outputs fitted to these {len(xs)} examples "
                       f"drive it from {start:.4g} to {floor:.4g}{'' if floor == -math.inf else ' and lower'}",
                       "a loss with a lowest value",
                       "training drives such a loss to -inf instead of fitting the data: a term with the wrong sign (a "
                       "KL divergence or a penalty subtracted instead of added, a flow's log-determinant added "
                       "instead of subtracted), a missing minus sign, a KL "
                       "divergence with its arguments swapped or NLL on raw scores (see the initial loss); a "
                       "likelihood with a learned variance needs a floor on that variance")
    if unknown:
        # free outputs left the loss's domain (a variance below 0) before reaching its lowest value: the floor is
        # unknown, and the loss is judged as when the fit misses, against 0 (below where it started)
        floor = min(start, 0.0)
    if math.isnan(floor) or floor == math.inf:
        return Verdict(name, "skip", f"skipped: the loss ({start:.4g} at the start) is not finite over outputs "
                       "fitted to these examples", "a loss with a lowest value", "see the initial loss")
    # a floor set by a softmax (or a sigmoid) applied before a loss that applies its own: a bug even when reached
    softmaxed = softmax_before_cross_entropy(model, xs, ys, loss_fn, floor) or \
        (sigmoid_in_logits_loss(model, xs, ys, loss_fn) or softmax_inside_loss(model, xs, ys, loss_fn)
         if loss_kind(loss_fn) == "unknown" else None)
    floor = floor if floor > 0 or start < 0 else 0.0
    reachable = None if unknown else autoregressive_floor(model, xs, ys, loss_fn)
    ordered = None if reachable is None else reachable.loss
    floor = ordered if ordered is not None and floor < ordered < start else floor  # output j never sees input j
    if floor > start:  # the fit of free outputs missed (it cannot be above what the model already reaches)
        floor = min(start, 0.0)
    sampled = samples_in_forward(model, xs)
    const = None if counted or sampled or unknown else constant_output_loss(model, xs, ys, loss_fn, start, floor)
    reference = start if const is None else const  # the gap to close starts here
    bar = 0.1 * max(reference - floor, 1e-12) + 1e-3
    # a model that starts below every constant output (its init already follows the inputs) is held to the noise
    # from its start: half the way from there still lies below anything a model that ignores its input reaches
    regression = not (counted or sampled or unknown)
    noisy, borrowed = noise_bar(xs, fitted, ys, loss_fn, floor, const if const is not None or not regression else
                                start)
    reach = max(bar, noisy)  # what a model that fits these examples from their inputs reaches
    stop = floor + min(1e-2, bar / 2)  # a loss of small scale (class weights of 0.25) must train below its bar
    trace: list[float] = []
    # torch's regression losses judged from one constant output train on at falling rates (a loss known only by
    # what it computes trains on at its rate, as before)
    # a loss of bounded gradient (absolute error, Huber, smooth L1) starts from the targets' offset (Karpathy's
    # "init well"), not 1000 units away
    offset = at_target_offset(model, xs, ys) if const is not None and loss_kind(loss_fn) in _BOUNDED_GRADIENT \
        else None
    m, final, acc = _fit_copy(offset or model, xs, ys, loss_fn, (steps, lr, seed), (stop, floor, bar, reach), sampled,
                              trace, const is not None and loss_kind(loss_fn) in _REGRESSION)
    if sampled:
        return _sampled_verdict(model, xs, ys, loss_fn, start, final, floor)
    # per-element binary targets (pixels, many labels) are judged to 99%: a few elements stay near 0.5 at the floor
    per_element = isinstance(ys, torch.Tensor) and ys.is_floating_point() and ys.dim() > 1 and ys[0].numel() > 1
    ceiling = _accuracy_ceiling(xs, ys, reachable, floor)

    def reached(final: float, acc: float | None) -> bool:
        return math.isfinite(final) and _accurate(acc, per_element, ceiling) and final - floor < reach

    ok = reached(final, acc)
    retried = None if ok or softmaxed else \
        _slower_fit(model, xs, ys, loss_fn, (steps, lr, seed), (stop, floor, bar, reach), trace, reached)
    shown = ""
    if retried is not None:  # the copy's loss kept jumping back up: a rate too high for this model
        (m, final, acc), ok = retried[1], True
        shown = (f", at Adam's rate {retried[0]:g} (at {lr:g} its loss kept jumping back up: a rate too high for "
                 "this model, as for a SIREN's sines)")
    # only a copy that learned from its inputs (a quarter of the way below the constant) can have its fit hidden
    plain = None if ok or softmaxed or const is None or not final < const - 0.25 * (const - floor) else \
        _without_dropout(model, xs, ys, loss_fn, (steps, lr, seed), (stop, floor, bar, reach), reached)
    if plain is not None:  # a regression whose dropout noise, which grows with its outputs, hid the fit
        (m, final, acc), ok, shown = plain[0], True, plain[1]
    shown = (f", acc {acc:.0%}" if acc is not None else "") + shown
    floor_text = f" (floor {floor:.3g}: the lowest loss any {'unit-norm ' if sphere else ''}outputs reach)" \
        if floor > 1e-3 else ""
    if ordered is not None and floor == ordered:
        floor_text = (f" (floor {floor:.3g}: each output sees only the inputs before it, so examples that share them "
                      "share it: the lowest loss such outputs reach)")
    if const is not None:
        floor_text += f"; one constant output for all of them gives {const:.3g}"
    if noisy > bar:
        floor_text += (f"; each example given its nearest neighbour's output gives {borrowed:.3g}: "
                       "noisy targets of a low-dimensional input, judged against half of that (their noise)")
    if softmaxed:  # it meets its floor, but the floor itself is the bug
        ok = False
    floor_text += "" if ok or unknown else shortfall(final, acc, start, floor, reach,  # the loss or the accuracy
                                                     _accurate(acc, per_element, ceiling), bool(softmaxed))
    where = "the start's" if const is None else "one constant output's"
    advice = softmaxed or "" if ok else softmaxed or (bounded_scores(m, xs, ys, loss_fn) or
                            dominant_inner_term(model, xs, ys, loss_fn, seed) or
                            _constant_advice(const, final, floor, len(xs)) or _frozen_advice(model, xs) or
                            _sphere_advice(sphere, floor, fitted, xs, ys, loss_fn) +
                            f"the model cannot memorize {len(xs)} examples: too little capacity (a missing "
                            "nonlinearity?), a bug in the loss or labels, or a frozen/broken layer")
    if unknown and not ok:  # a floor that is unknown may lie far above 0 on these examples: a miss is no bug
        floor_text = ("; the loss's floor is unknown (outputs fitted to these examples left its domain), "
                      "judged against 0") if held is None else (
            f"; outputs fitted freely drive the loss to -inf, while the model's own stay bounded (at {held:.3g} "
            "after training): its outputs are tied (a normalizing flow's z and log-determinant), the floor is "
            "unknown, judged against 0")
    return Verdict(name, "pass" if ok else "info" if unknown else "fail",
                   f"loss {start:.3g} -> {final:.3g}{shown} on {len(xs)} examples{floor_text}",
                   ("loss ~ 0" if floor <= 1e-3 else "loss near its floor") +
                   ("" if acc is None else ", accuracy 100%" if ceiling == 1.0 else
                    f", token accuracy ~{ceiling:.0%} (the most a left-to-right model reaches where equal prefixes "
                    "go on differently; 100% if it reads the whole sequence)") +
                   ("" if acc is not None else
                    f" (within the targets' noise, at most half the way from {where} loss to it)"
                    if noisy > bar else " (< 10% of the start)" if const is None else
                    " (within 10% of the way from one constant output's loss to it)"), advice)


def _accurate(acc: float | None, per_element: bool, ceiling: float) -> bool:
    """Whether the accuracy meets the overfit's bar: 100% (99% for per-element binary targets; the most a
    left-to-right model reaches, ``ceiling``, where that is lower); None (no class scores) meets it."""
    return acc is None or acc == 1.0 or per_element and acc >= 0.99 or ceiling < 1.0 and acc >= ceiling - 0.01


def _targets_as_outputs(loss_fn: Callable, ys) -> float:
    """A regression loss (squared, absolute, Huber) of outputs equal to the targets: 0, the floor the search of free
    outputs must reach from outputs near 0 (targets in raw units around 1000 leave an absolute error's search,
    whose gradient keeps one size, short of them); inf for other losses or targets."""
    if loss_kind(loss_fn) not in _REGRESSION or not isinstance(ys, torch.Tensor) or not ys.is_floating_point():
        return math.inf
    try:
        with torch.no_grad():
            value = _scalar(loss_fn(ys.detach().clone(), ys))
    except Exception:  # noqa: BLE001 - a loss that does not take its targets as outputs: no candidate
        return math.inf
    return value if math.isfinite(value) else math.inf


def _fit_copy(model: nn.Module, xs, ys, loss_fn: Callable, schedule: tuple, bars: tuple, sampled: bool,
              trace: list, from_constant: bool = False) -> tuple[nn.Module, float, float | None]:
    """A copy trained on ``(xs, ys)`` (``schedule``: steps, lr, seed; ``bars``: stop, floor, bar, reach; ``trace``
    gets the first stretch's losses), with its loss and accuracy judged in eval and in train mode (seeded), the
    better of the two."""
    steps, lr, seed = schedule
    stop, floor, bar, reach = bars
    m, final = _train_copy(model, xs, ys, loss_fn, steps, lr, seed, stop_below=stop, trace=trace)
    m, final = _train_on(model, m, xs, ys, loss_fn, (steps, lr, seed), final, floor, bar, reach, sampled, from_constant)
    final, acc = _judged(m, xs, ys, loss_fn, seed)
    return m, final, acc


def _judged(m: nn.Module, xs, ys, loss_fn: Callable, seed: int) -> tuple[float, float | None]:
    """The trained copy's loss and accuracy on ``(xs, ys)`` in eval and in train mode (seeded), the better of the
    two (finite first); the copy is left in eval mode."""
    candidates = []
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        for mode in (False, True):
            torch.manual_seed(seed)
            out = call(m.train(mode), xs)
            candidates.append((_scalar(loss_fn(out, ys)), _accuracy(out, ys, loss_fn)))
    m.eval()
    finite = [c for c in candidates if math.isfinite(c[0])]
    return min(finite, key=lambda c: (-(c[1] or 0.0), c[0])) if finite else candidates[0]


def _slower_fit(model: nn.Module, xs, ys, loss_fn: Callable, schedule: tuple, bars: tuple, trace: list,
                reached: Callable) -> tuple[float, tuple] | None:
    """(the lower rate, the copy fitted at it) when the first copy's losses (``trace``) kept jumping back up
    (:mod:`~trainwell.doctor.rate_retry`) and a copy trained at a tenth of the rate ``reached`` the bar; None
    otherwise."""
    steps, lr, seed = schedule
    slower = retry_rate(lr, trace)
    if slower is None:
        return None
    again = _fit_copy(model, xs, ys, loss_fn, (steps, slower, seed), bars, False, [])
    return (slower, again) if reached(*again[1:]) else None


def _without_dropout(model: nn.Module, xs, ys, loss_fn: Callable, schedule: tuple, bars: tuple,
                     reached: Callable) -> tuple[tuple, str] | None:
    """(the copy fitted with its dropout off, the note the verdict shows) when the model has dropout
    (:func:`~trainwell.doctor.dropout_off.dropout_off`) and that copy, trained on as a regression judged from one
    constant output, ``reached`` the bar; None otherwise."""
    plain = dropout_off(model)
    if plain is None:
        return None
    again = _fit_copy(plain[0], xs, ys, loss_fn, schedule, bars, False, [], True)
    if not reached(*again[1:]):
        return None
    return again, (f", with dropout off (at p = {plain[1]:g} its noise, which grows with the outputs, hid the fit "
                   "of targets this far from 0)")


def _train_on(model: nn.Module, m: nn.Module, xs, ys, loss_fn: Callable, schedule: tuple, final: float,
              floor: float, bar: float, reach: float, sampled: bool,
              from_constant: bool = False) -> tuple[nn.Module, float]:
    """The copy ``m`` trained on past its first ``steps`` (``schedule``: steps, lr, seed), up to 4 stretches more,
    while its loss is short of the bar and keeps falling, and its last loss.

    A loss of unknown form may fall slowly (an L1-like pinball loss, an ordinal model's cumulative BCE), and a
    sampling forward has no reachable floor: while the loss is short of the bar and has fallen over the last
    stretch, the copy trains on, up to 5x the steps. An absolute error (torch's L1) has a gradient of one size
    however close the outputs are: Adam at a fixed rate then circles the fit at a distance set by the rate, so each
    stretch of L1 runs at half the last one's rate, until its loss is clearly (by a fifth of the bar) below the
    bar: the copy is judged again from its outputs after the last update. A head on a frozen backbone's features
    (of a healthy spread: narrow ones are named by the advice) fits at the pace their scale allows, and trains on
    the same way (:func:`~trainwell.doctor.frozen_features.fitting_head`). A regression judged ``from_constant``
    (one constant output's loss) trains on too, each stretch at half the last one's rate, its loss read as the
    better of eval and train mode: outputs that start near 0 first travel the targets' offset (raw units around 10
    or 1000), and dropout's noise on outputs that large keeps the train-mode loss up while the eval-mode fit
    improves; a model that reaches only the constant stops falling there."""
    steps, lr, seed = schedule
    stop = floor + min(1e-2, bar / 2)
    absolute = loss_kind(loss_fn) == "l1"
    head = None
    final = _judged(m, xs, ys, loss_fn, seed)[0] if from_constant and math.isfinite(final) else final
    for stretch in range(4):
        if not math.isfinite(final) or final - floor < (0.8 * bar if absolute else reach):
            break
        if loss_kind(loss_fn) != "unknown" and not absolute and not sampled and not from_constant:
            head = fitting_head(model, xs) if head is None else head
            if not head:
                break
        rate = lr / 2 ** (stretch + 1) if absolute or from_constant else lr
        m, later = _train_copy(m, xs, ys, loss_fn, steps, rate, seed, stop_below=stop)
        later = _judged(m, xs, ys, loss_fn, seed)[0] if from_constant and math.isfinite(later) else later
        if not later < 0.9 * final:  # no longer falling: more steps would not change the verdict
            return m, later
        final = later
    return m, final


def noise_bar(xs, fitted: Callable, ys: torch.Tensor, loss_fn: Callable, floor: float,
              const: float | None) -> tuple[float, float | None]:
    """How far above the ``floor`` a regression on low-dimensional inputs may end (0 where none applies): half the
    loss of each example given its nearest neighbour's fitted output (the noise a smooth function of the inputs
    leaves, :mod:`~trainwell.doctor.low_dimensional`), at most half the way from ``const`` to the floor: one
    constant output's loss, or the start's where the model starts below it, so a model that ignores its input never
    reaches it; with that neighbours' loss."""
    if const is None:
        return 0.0, None
    with torch.no_grad():
        borrowed = neighbour_loss(xs, fitted(len(xs)), ys, loss_fn)
    if borrowed is None:
        return 0.0, None
    return max(0.0, min(0.5 * (borrowed - floor), 0.5 * (const - floor))), borrowed


def _frozen_advice(model: nn.Module, xs) -> str | None:
    try:
        return narrow_frozen_features(model, xs)
    except Exception:  # noqa: BLE001 - a forward this reading cannot follow: the usual advice
        return None


def constant_output_loss(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable,
                         start: float, floor: float) -> float | None:
    """The loss of the best constant output on these examples (one output for all of them, fitted to the user's
    loss: the targets' variance for MSE, their median's error for L1), when it lies between the floor and the
    loss at the start; None otherwise (a model that starts better than any constant is judged from its start)."""
    try:
        const = _scalar(loss_fn(_free_outputs(model, x, y, loss_fn, per_example=False)(len(y)), y))
    except Exception:  # noqa: BLE001 - a loss whose constant output cannot be fitted: judged from the start
        return None
    return const if math.isfinite(const) and floor < const < start else None


#: how far the sphere's floor is scaled to test whether the norm holds it up: outputs 3.16x, dot products 10x
SPHERE_SCALE = math.sqrt(10.0)


def _sphere_advice(sphere: bool, floor: float, fitted: Callable, xs, ys, loss_fn: Callable) -> str:
    """The note on a floor held up by unit-norm outputs (a contrastive loss on normalized embeddings), before the
    usual causes of a failed overfit: given only where the fitted unit-norm outputs, scaled up 3.16x (their dot
    products 10x, as a temperature 10x lower makes them), reach under half the floor; empty for other outputs, a
    floor near 0, or a floor that the outputs' scale does not set (a loss that normalizes them itself, or whose
    floor lies elsewhere: several positives per anchor)."""
    if not sphere or floor <= 0.1:
        return ""
    try:
        with torch.no_grad():
            out = fitted(len(xs))
            scaled = _scalar(loss_fn(O.map_tensors(out, lambda t: t * SPHERE_SCALE if is_unit_norm(t) else t), ys))
    except Exception:  # noqa: BLE001 - a loss that refuses outputs off the sphere: no evidence either way
        return ""
    if not scaled < 0.5 * floor:
        return ""
    return (f"the outputs have unit norm and the loss cannot go below {floor:.3g} on the sphere, while the same "
            f"outputs scaled 3.2x (dot products 10x) give {scaled:.3g}: the logits are bounded (±1/T at temperature "
            "T), so a lower temperature (T/10) lets it fall; else ")


def _constant_advice(const: float | None, final: float, floor: float, n: int) -> str | None:
    """Advice when the trained copy ends no better than one constant output for all ``n`` examples (short of a
    quarter of the way from its loss to the floor); None otherwise."""
    if const is None or not math.isfinite(final) or final < const - 0.25 * (const - floor):
        return None
    return (f"the model fits these {n} examples no better than one constant output for all of them: only what does "
            "not depend on the input learns (every weight frozen but an output bias, or an input that never reaches "
            "the output: zeroed, replaced, or cut by a bug in forward)")


def _sampled_verdict(model: nn.Module, xs: torch.Tensor | Inputs, ys: torch.Tensor, loss_fn: Callable, start: float,
                     final: float, floor: float) -> Verdict:
    """The overfit verdict for a forward that samples: its trained loss ``final`` (where it stopped falling) must
    undercut the best input-independent output's loss by a quarter of the gap from it to the free-output
    ``floor``, which the noise keeps out of reach."""
    const = _scalar(loss_fn(_free_outputs(model, xs, ys, loss_fn, per_example=False)(len(xs)), ys))
    bar = const - 0.25 * max(const - floor, 0.0)
    ok = math.isfinite(final) and final <= bar
    value = (f"loss {start:.3g} -> {final:.3g} on {len(xs)} examples, where it stopped falling; the forward samples "
             f"(two training-mode forwards of the same input differ), so the lowest loss free outputs reach "
             f"({floor:.3g}) is out of its reach: judged against one output for all examples ({const:.3g})")
    advice = "" if ok else dominant_inner_term(model, xs, ys, loss_fn) or (
        "the model fits these examples no better than one output for all of them: is the sampled path cut from "
        "the gradient (z = torch.normal(mu, std) or a .detach() instead of mu + std * torch.randn_like(std)), the "
        "encoder frozen or disconnected, or the capacity too small?")
    return Verdict("overfit a tiny subset", "pass" if ok else "fail", value,
                   f"loss <= {bar:.3g} (a quarter of the way from one output for all examples to the floor)", advice)


def _accuracy_ceiling(xs, ys, reachable: OrderedFloor | None, floor: float) -> float:
    """The accuracy a fit at the ``floor`` is held to: a left-to-right model's on next-token targets
    (:func:`causal_ceiling`), and where the floor is an autoregressive model's (``reachable``), the share of elements
    its contexts settle: outputs that share a context share a prediction too."""
    ceiling = causal_ceiling(xs, ys)
    return min(ceiling, reachable.accuracy) if reachable is not None and floor == reachable.loss else ceiling


def causal_ceiling(x: torch.Tensor | Inputs, y: torch.Tensor) -> float:
    """The highest token accuracy a left-to-right model can reach on next-token targets: inputs (N, T) of token ids
    and targets (N, T), where position t sees only x[:, :t + 1]. Positions with the same prefix get the same
    prediction, so each prefix scores its most frequent target. 1.0 for any other data. A model that reads the whole
    sequence can reach 100%; the check accepts the lower bar, never a higher one."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or \
            x.is_floating_point() or y.is_floating_point() or x.dim() != 2 or \
            y.shape != x.shape or x.numel() > 100_000:
        return 1.0
    counts: dict[tuple, dict[int, int]] = {}
    rows, targets = x.tolist(), y.tolist()
    total = 0
    for row, tgt in zip(rows, targets, strict=True):
        for t, label in enumerate(tgt):
            if label < 0:
                continue
            seen = counts.setdefault(tuple(row[: t + 1]), {})
            seen[label] = seen.get(label, 0) + 1
            total += 1
    return sum(max(c.values()) for c in counts.values()) / total if total else 1.0
