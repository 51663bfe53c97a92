"""The ``loop: loss`` verdict: what the loss a hand-written loop back-propagates is, read from the gradient it sends
to the model's outputs (:mod:`~trainwell.doctor.loss_form`): its total weight (a mean, a sum, counted twice, k
micro-batches not divided), its form (softmax over the batch or over runs of values, cross-entropy on
probabilities, NLL on raw scores, -p(label) maximized, a policy gradient), bounded scores, and the first loss
against ln C; ``F.kl_div`` given probabilities against the probability targets given to ``w.step``
(:mod:`~trainwell.doctor.distribution_targets`); a regression loss's reduction, its accumulation and scale
(:mod:`~trainwell.doctor.regression_reduction`); binary cross-entropy's reduction, or BCE with logits given
sigmoid(outputs) (:mod:`~trainwell.doctor.binary_loop_loss`); a loss of another form is named when it is minus a
cross-entropy or BCE-with-logits on a Sigmoid's outputs, else skipped."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trainwell.doctor.binary_loop_loss import binary_loss_verdict, sigmoid_layer_verdict
from trainwell.doctor.class_axis import scrambled_text
from trainwell.doctor.distribution_targets import against_distributions
from trainwell.doctor.loop_probe import LoopProbe
from trainwell.doctor.loop_step_hooks import ADAPTIVE
from trainwell.doctor.loop_verdicts import grad_scaler_unscale
from trainwell.doctor.loss_form import NON_NEGATIVE, smoothed_floor
from trainwell.doctor.loss_scaling import undivided_scale
from trainwell.doctor.normalized_scores import normalized_in_loop
from trainwell.doctor.output_layer import scores_dropout_verdict, watched_scores_batchnorm
from trainwell.doctor.passes_summed import passes_summed
from trainwell.doctor.pseudo_targets import pseudo_target_verdict
from trainwell.doctor.swapped_arguments import swapped_verdict
from trainwell.doctor.verdict import Verdict

#: the advice for scores that are never negative: the ReLU's zeros are also why the output units it ends with die
NON_NEGATIVE_ADVICE = (f"{NON_NEGATIVE} Scores that are never negative cannot push a wrong class below 0, and a "
                       "ReLU's zeros pass no gradient (output units that die there follow from it, not from the "
                       "learning rate or the init): end the model with its last Linear layer and no activation "
                       "(cross-entropy applies its own softmax)")
#: the advice for scores that are never negative and never exactly 0 (a Softplus, exp or x ** 2 after the last
#: layer): softmax ignores a shift of a row's scores, so the map adds nothing, and its slope (a Softplus's is
#: sigmoid(z)) vanishes where its input falls far below 0
SMOOTH_NON_NEGATIVE_ADVICE = (f"{NON_NEGATIVE} Softmax ignores a shift of a row's scores, so keeping them above 0 "
                              "adds nothing, and the map's slope (a Softplus's is sigmoid(z)) vanishes where its input "
                              "falls far below 0, so a class whose scores sink there stops learning: end the model "
                              "with its last Linear layer and no activation (cross-entropy applies its own softmax)")
#: what a policy gradient's loss curve cannot say, and what the gradient cannot tell (the sign of the advantages:
#: :mod:`~trainwell.doctor.policy_gradient`)
PG_ADVICE = ("a policy-gradient loss is not a supervised curve: judge the run by its rewards; if they fall, check "
             "the sign: the loss is -log p(action) x advantage (with +, the gradient step lowers the reward)")


def loss_scale(probe: LoopProbe, first_loss: float | None, class_labels: bool = False) -> Verdict:
    """The gradient the loss sends to the logits says what the loss is (:mod:`~trainwell.doctor.loss_form`): its
    total weight must be 1 (a mean over the step's examples), softmax over the class axis, on logits. A model with
    several heads (a second task's class scores in a tuple or dict) has each other head read for a softmax or a
    bound before its loss; the class scores' own failure comes first. A BatchNorm on the scores is
    :func:`output_layer`'s."""
    verdict = _scores_loss(probe, first_loss, class_labels)
    heads = _heads_verdict(probe)
    if heads is None or verdict.status == "fail" or verdict.status == "warn" and heads.status == "warn":
        return verdict
    return heads


def cosine_scores(verdict: Verdict, probe: LoopProbe, forward: tuple | None) -> Verdict:
    """``verdict``, or, where it warns that the first loss is far above ln C and the scores are normalized after the
    last weighted layer (a cosine classifier, ``s * cos(theta)``: :func:`~trainwell.doctor.normalized_scores.
    normalized_in_loop`), a pass that says their scale is the model's own ``s`` (CosFace, ArcFace), not an init."""
    if verdict.status != "warn" or not str(verdict.value).startswith("first loss") or \
            probe.scores_batchnorm is not None:  # a BatchNorm on the scores normalizes them too: its own verdict
        return verdict
    layer = normalized_in_loop(probe, forward)
    if layer is None:
        return verdict
    return Verdict(verdict.check, "pass", f"{verdict.value}: the scores are normalized after the last layer "
                   f"'{layer}' (its output doubled leaves them unchanged: a cosine classifier, s * cos(theta)), so "
                   "their spread is the model's own scale s, not an init: a first loss above ln C is by design "
                   "(CosFace, ArcFace)", verdict.expected)


def output_layer(probe: LoopProbe) -> Verdict | None:
    """``loop: output layer``: a BatchNorm on the scores under a loss that wants raw logits, read beside the
    loss's own verdict (a sum, a loss counted twice, a first loss far above ln C: the normalized scores explain the
    last, :func:`~trainwell.doctor.loop_deferral.defer`)."""
    return watched_scores_batchnorm(probe.scores_batchnorm, [s["form"] for s in probe.steps], probe.binary_reads)


def _heads_verdict(probe: LoopProbe) -> Verdict | None:
    """The model's other heads: cross-entropy on one's probabilities (a Softmax ends it) on every observed step
    its loss reached it is a fail, bounded scores (a Sigmoid, a ReLU, a 2-class Softmax) a warning."""
    seen: dict[str, list[str | None]] = {}
    for s in probe.steps:
        for head, problem in (s.get("heads") or {}).items():
            seen.setdefault(head, []).append(problem)
    for head, problems in seen.items():
        if all(p == "probabilities" for p in problems):
            return Verdict("loop: loss", "fail", f"cross-entropy is applied to probabilities on {head} (a softmax "
                           f"before the loss) on all {len(problems)} observed steps", "cross-entropy on raw logits",
                           "nn.CrossEntropyLoss applies log-softmax itself: remove the Softmax that ends this head "
                           "(or use NLLLoss on log_softmax); a double softmax squashes the gradients")
    for head, problems in seen.items():
        if all(p and p != "probabilities" for p in problems):
            return Verdict("loop: loss", "warn", f"a classification loss on {head}'s outputs {problems[0]} on all "
                           f"{len(problems)} observed steps", "raw logits (any real value) into the loss",
                           "an activation after a head's last layer (Sigmoid, ReLU, Softmax) bounds its logits, so "
                           "its loss cannot fall far and the gradients shrink: remove it (cross-entropy applies its "
                           "own softmax)")
    return None


def _scores_loss(probe: LoopProbe, first_loss: float | None, class_labels: bool = False) -> Verdict:
    """:func:`loss_scale`'s reading of the class scores (the first output, or the field named ``logits``)."""
    name = "loop: loss"
    dropped = scores_dropout_verdict(probe.scores_dropout, name)
    if dropped is not None:
        return dropped
    # kl_div on probabilities, read exactly against the targets given, before forms whose fit has a weight per row
    # (a policy gradient's, which peaked targets come close to); then soft targets that are the model's softmax on
    # another forward, differentiated too (a warning)
    early = [v for v in (against_distributions(probe.distribution_reads, first_loss),
                         pseudo_target_verdict(probe.steps)) if v is not None and v.status in ("fail", "warn")]
    if early:
        return early[0]
    steps = [s for s in probe.steps if s["form"] is not None]
    if not steps:
        return _unread_form(probe, first_loss, class_labels)
    s = steps[0]
    form, weight, k = s["form"], s["loss_weight"], s["backwards"]
    amp = ""
    if grad_scaler_unscale(s) != 1.0:  # AMP's GradScaler: backward() ran on loss x 2^k
        weight *= grad_scaler_unscale(s)
        scaler = "GradScaler's scale" if s.get("amp_scale") else "the loss scale"
        amp = f"; {scaler} {1 / grad_scaler_unscale(s):.6g} divided out"
    wrong = _wrong_form(name, steps, first_loss)
    if wrong is not None:
        return wrong
    bounded = [t["bounded"] for t in steps]
    # a clamp shows at both bounds once the scores reach them (its first steps read like raw logits or a ReLU's):
    # scores tied at both ends on half the observed steps are no raw logits
    pinned = [b for b in bounded if b and "a clamp" in b]
    if form in ("cross_entropy", "two_classes") and (all(bounded) or 2 * len(pinned) >= len(steps)):
        loss = "cross-entropy" if form == "cross_entropy" else "a classification loss (2 classes)"
        # a Softplus's scores start in [0, 1] and leave it as they grow: the latest non-negative reading names it
        positive = [b for b in bounded if b and b.startswith("non-negative")]
        shown, on = (pinned or positive[-1:] or bounded)[0], "all" if all(bounded) else f"{len(pinned)} of"
        advice = (NON_NEGATIVE_ADVICE if "exactly 0" in shown else SMOOTH_NON_NEGATIVE_ADVICE) \
            if shown.startswith("non-negative") else (
            "an activation after the last layer (Sigmoid, ReLU, Softmax, a clamp) bounds the logits, so the loss "
            "cannot fall far and the gradients shrink: remove it (cross-entropy applies its own softmax)")
        return Verdict(name, "warn", f"{loss} on outputs {shown} on {on} {len(steps)} observed steps",
                       "raw logits (any real value) into the loss", advice)
    if form == "two_classes":
        return Verdict(name, "skip", "skipped: with 2 classes the loss's form and weight cannot be read from its "
                       "gradient (any zero-sum gradient fits); its outputs are raw logits", "-", "")
    rows = max(s["rows"], 1)
    formula = _formula(form, s, steps)
    weighted = False  # per-example weights that differ
    if abs(weight - 1) <= 0.02:
        value = f"mean {formula} (weights sum to {weight:.3g}){amp}"
    elif abs(weight - rows) <= 0.02 * rows:
        return Verdict(name, "info", f"summed {formula} over {rows} examples (reduction='sum')", "-",
                       f"the gradient is {rows}x the mean's and grows with the batch size: use reduction='mean', or "
                       f"divide a learning rate tuned for the mean by {rows}")
    elif (undivided := undivided_scale(name, steps, isinstance(probe.optimizer, ADAPTIVE))) is not None:
        return undivided
    elif k > 1 and abs(weight - k) <= 0.02 * k:
        return passes_summed(name, k, weight, s["forwards"])
    elif (terms := _forward_terms(name, formula, steps, amp)) is not None:
        return terms
    elif s.get("slower_than_ce") or \
            (max(s.get("spread") or 1.0, _across_steps(steps)) > 1.5) and abs(weight - round(weight)) > 0.02 * weight:
        # per-example weights that differ (sample weights, a focal term, rewards) and sum to no whole multiple of
        # the mean, or that rise with p(label) (symmetric cross-entropy's, near 2x the mean's at any spread): a
        # weighted loss by design, not one counted twice
        # (read on: logits far too large at the start saturate the softmax, whose gradient then reads as uneven
        # weights, and the first loss against ln C still tells)
        value = (f"{formula} with per-example weights (they differ between examples or steps), summing to "
                 f"{weight:.3g}{amp}")
        weighted = True
    else:
        return Verdict(name, "warn", f"the {formula}'s gradient is {weight:.3g}x that of its mean over the step's "
                       f"{rows} examples", "weights summing to 1", "the loss is scaled: counted twice (added to "
                       "itself, or backward() called on it twice), or divided/multiplied by the wrong count")
    c = s["classes"]
    # the loss of a model with several heads adds their terms: its first value is not cross-entropy's alone
    if first_loss is not None and c and c > 1 and s["step"] == 0 and math.isfinite(first_loss) and \
            not probe.multi_output:
        verdict = _against_ln_c(name, value, first_loss, weight, c, k, weighted,
                                weighted and bool(s.get("slower_than_ce")))
        return _beside_other_terms(verdict, first_loss, s, weight, k, weighted)
    return Verdict(name, "pass", value, "-")


def _against_ln_c(name: str, value: str, first_loss: float, weight: float, c: int, k: int,
                  weighted: bool, slower: bool = False) -> Verdict:
    """The first loss of a cross-entropy read from its gradient (weights summing to ``weight``, ``k`` accumulated
    micro-batches; ``weighted``: per-example weights that differ) against ``weight`` x ln C. Weights below 1 that
    differ, with a first loss no higher than ln C, are a loss that grows slower than cross-entropy: generalized
    cross-entropy (1 - p^q) / q has the gradient of cross-entropy times p^q and starts between p^q x ln C and
    ln C; it is not compared. Nor is a loss whose weights rise with p(label) (``slower``: a function of p(label)
    alone, such as symmetric cross-entropy's -A (1 - p) term, whose first value no multiple of ln C predicts)."""
    if slower:
        return Verdict(name, "pass", f"{value}; first loss {first_loss:.4g}: the weights rise with each label's "
                       "probability, a loss that grows slower than cross-entropy (generalized or symmetric "
                       "cross-entropy, mean absolute error), so it is not compared with ln C", "-")
    if weighted and weight < 0.98 and first_loss <= math.log(c):
        return Verdict(name, "pass", f"{value}; first loss {first_loss:.4g}, between {weight:.3g} x ln C = "
                       f"{weight * math.log(c):.4g} and ln C = {math.log(c):.4g}: a loss that grows slower than "
                       "cross-entropy (generalized cross-entropy (1 - p^q) / q) starts there, so it is not compared "
                       "with ln C", "-")
    expected = weight * math.log(c) / max(k, 1)
    # with k accumulated micro-batches the loss given to w.step may be one divided part or the whole: ln C
    if weight > 0 and first_loss > 2.0 * weight * math.log(c):
        return Verdict(name, "warn", f"first loss {first_loss:.4g} vs {expected:.4g} (ln C, C = {c} from the "
                       f"output width): an initial loss {first_loss / expected:.3g}x that of uniform outputs",
                       "near ln C at initialization", "initial outputs are far from uniform: "
                       "inputs far from unit scale, a last layer initialized too large, or a sum after it "
                       "without normalization (doctor.check on a batch names which)")
    return Verdict(name, "pass", f"{value}; first loss {first_loss:.4g} vs ln C = {math.log(c):.4g}", "-")


def _beside_other_terms(verdict: Verdict, first_loss: float, s: dict, weight: float, k: int,
                        weighted: bool) -> Verdict:
    """A first loss far above ln C whose outputs' own mean cross-entropy (the first step's scores against the labels
    their gradient reads) is near ln C: the rest is another term added to the loss that the outputs do not carry
    (a Bayes-by-backprop KL term over the weights, Blundell et al. 2015; a hand-written weight penalty), not
    outputs far from uniform. Read for a plain mean (weights summing to 1, one backward) only."""
    z, labels = s.get("first_logits"), s.get("first_labels")
    if verdict.status != "warn" or not verdict.value.startswith("first loss") or weighted or k > 1 or \
            abs(weight - 1) > 0.02 or z is None or labels is None or z.dim() != 2 or len(z) != len(labels):
        return verdict
    own = float(F.cross_entropy(z.detach().double(), labels))
    c = z.shape[1]
    if not math.isfinite(own) or own > 2.0 * math.log(c):
        return verdict
    return Verdict(verdict.check, "pass", f"mean cross-entropy (weights sum to {weight:.3g}); first loss "
                   f"{first_loss:.4g}, of which the outputs' cross-entropy is {own:.4g} (ln C = {math.log(c):.4g}): "
                   f"the other {first_loss - own:.4g} is a term added to the loss that the outputs do not carry (a "
                   "KL term over sampled weights, a weight penalty)", "-")


def _formula(form: str, s: dict, steps: list[dict]) -> str:
    """The loss read, in words: cross-entropy or NLL, with its label smoothing or its soft targets."""
    formula = {"nll": "NLL", "log_of_probabilities": "cross-entropy on the model's probabilities, the log taken in "
               "the loss"}.get(form, "cross-entropy")
    if s.get("smoothing"):
        formula += f" with label smoothing {s['smoothing']:.2g}"
    if all(t.get("soft_targets") for t in steps):  # the gradient of a KL divergence to them is the same
        formula += " (or KL divergence) against the soft targets given to w.step"
    return formula


def loss_floor(probe: LoopProbe) -> float:
    """The lowest value the loss given to ``w.step`` can reach, read from its form: the smoothed targets' entropy
    for a mean cross-entropy with label smoothing on every observed step (one backward() per step, weights summing
    to 1), else 0. The loss curve's drop is measured towards it."""
    steps = [s for s in probe.steps if s["form"] is not None]
    if not steps or any(not s.get("smoothing") or s["backwards"] > 1 or abs(s["loss_weight"] - 1) > 0.02
                        for s in steps):
        return 0.0
    eps = sorted(s["smoothing"] for s in steps)[len(steps) // 2]
    return smoothed_floor(eps, steps[0]["classes"])


def soft_target_floors(ys: list[torch.Tensor], losses: list[float]) -> list[float] | None:
    """Each step's floor when the targets given to ``w.step(loss, y=y)`` on every step are probability rows, not
    all one-hot (mixup's, CutMix's mixed labels), and no loss fell below their mean entropy (a mean cross-entropy
    to them): that entropy, which no output goes below and which changes with each batch's mix. Else None."""
    if not ys or len(ys) != len(losses) or any(not y.is_floating_point() or y.dim() != 2 for y in ys):
        return None
    floors, mixed = [], False
    for y, loss in zip(ys, losses, strict=True):
        y = y.detach().double()
        if bool((y < 0).any()) or not torch.allclose(y.sum(1), torch.ones(len(y), dtype=y.dtype), atol=1e-4):
            return None
        entropy = float(-(y * y.clamp_min(1e-30).log()).sum(1).mean())
        if loss < entropy - 1e-4 * max(1.0, entropy):
            return None
        mixed = mixed or entropy > 1e-6
        floors.append(entropy)
    return floors if mixed else None


def _forward_terms(name: str, formula: str, steps: list[dict], amp: str) -> Verdict | None:
    """The reading of one backward() over a sum of terms, each over its own forward, whose weights sum above 1:
    each a mean (a labelled batch beside a pseudo-label term) passes; one with equal weights summing to the same
    whole number n >= 2 on every step (:func:`_scaled_forward`) is counted n times. None otherwise."""
    if any(t["backwards"] > 1 for t in steps):
        return None
    if all(t.get("separate_means") for t in steps):
        s = steps[0]
        return Verdict(name, "pass", f"a sum of {s['forwards']} terms, each a mean {formula} over its own forward "
                       f"(weights summing to {s['loss_weight']:.3g}){amp}", "-")
    scaled = _scaled_forward(steps)
    if scaled is None:
        return None
    return Verdict(name, "warn", f"the {formula}'s gradient on one of the step's forwards ({scaled[1]} examples) is "
                   f"{scaled[0]}x that of its mean, on every observed step", "weights summing to 1 per term",
                   "that term is counted more than once (added to itself, or computed twice on one batch): add "
                   "each term once")


def _scaled_forward(steps: list[dict]) -> tuple[int, int] | None:
    """(n, rows) when one of each step's forwards (one backward() over several) has equal per-example weights
    summing to the same whole number n >= 2 on every observed step: a term of the loss counted n times beside
    others (a labelled loss added to itself next to a pseudo-label term whose mask changes its weight). None
    otherwise."""
    parts = [s.get("forward_weights") for s in steps]
    if not parts or any(p is None or len(p) != len(parts[0]) for p in parts):
        return None
    for i in range(len(parts[0])):
        weights = [p[i][0] for p in parts]
        n = round(weights[0])
        if n >= 2 and all(abs(w - n) <= 0.02 * n and p[i][1] <= 1.02 for w, p in zip(weights, parts, strict=True)):
            return n, parts[0][i][2]
    return None


def _across_steps(steps: list[dict]) -> float:
    """Largest / smallest total weight of the loss over the observed steps of one form: a constant factor (a loss
    counted twice) gives 1; weights that follow the model's outputs (a focal term) change as it learns. Scaled
    so that a 10% change between steps counts like a 1.5x spread within one."""
    weights = [s["loss_weight"] for s in steps if s["form"] == steps[0]["form"] and s["loss_weight"]]
    if len(weights) < 2 or min(weights) <= 0:
        return 1.0
    return 1.0 + 5.0 * (max(weights) / min(weights) - 1.0)


def _wrong_form(name: str, steps: list[dict], first_loss: float | None) -> Verdict | None:
    """The loss's form when it is wrong (or not a supervised one): BCE with logits given (targets, outputs) (NLL's
    gradient, told apart by the value), a softmax over the batch or over runs of values, -p(label) maximized, NLL on
    raw scores, cross-entropy on probabilities; a policy gradient (info)."""
    swapped = [t["swapped"] for t in steps if "swapped" in t]  # the steps with a finite loss, given targets
    if swapped and all(swapped):  # NLL's gradient, and the value of BCE given (targets, outputs)
        return swapped_verdict(f"read from the loss's value and gradient on {len(swapped)} observed step(s)")
    s = steps[0]
    form = s["form"]
    if form == "cross_entropy_over_batch":
        return Verdict(name, "fail", "the softmax is taken over the batch axis (dim 0), not the classes",
                       "log_softmax / softmax over the class axis", "use dim=1 (or dim=-1) in log_softmax/softmax")
    if form == "probability_not_log":
        return Verdict(name, "warn", "the loss's gradient is -p(label)'s: the label's probability, not its log, is "
                       "maximized", "cross-entropy: -log softmax(z)[label]", "unless this is meant (the noise-robust "
                       "MAE loss 1 - p(label), Ghosh et al. 2017, which learns slowly), a log is missing in the "
                       "hand-written loss: use log_softmax, e.g. -(target * F.log_softmax(z, 1)).sum(1).mean() (for "
                       "label smoothing, nn.CrossEntropyLoss(label_smoothing=0.1))")
    if any(t["form"] == "signed_weights" for t in steps):  # a first step whose advantages were all >= 0 too
        betas = sorted(t["entropy_bonus"] for t in steps if t.get("entropy_bonus"))
        bonus = f", with an entropy bonus (beta {betas[len(betas) // 2]:.2g})" if betas else ""
        read = next((t["policy_read"] for t in steps if t.get("policy_read")), None)  # from the loss's graph
        return Verdict(name, "info", read or "cross-entropy on the model's own samples with per-example weights of "
                       f"both signs (a policy gradient: -log p(action) x advantage){bonus}", "-", PG_ADVICE)
    if form == "scrambled_classes":
        return Verdict(name, "fail", *scrambled_text(s["classes"]))
    if form == "nll" and s.get("log_probs") is False:
        return Verdict(name, "fail", "NLL on outputs that are not log-probabilities (their logsumexp over the "
                       "classes is not 0)" + (f"; first loss {first_loss:.4g}" if first_loss is not None else ""),
                       "NLLLoss on log_softmax outputs", "NLLLoss reads log-probabilities: on raw scores it rewards "
                       "growing the right class's score without bound (the loss turns negative and keeps falling); "
                       "end the model with log_softmax over the class axis, or use CrossEntropyLoss on the raw "
                       "logits")
    if form == "cross_entropy_on_probabilities":
        return Verdict(name, "fail", "cross-entropy is applied to probabilities (a softmax before the loss)",
                       "cross-entropy on raw logits", "nn.CrossEntropyLoss applies log-softmax itself: remove the "
                       "softmax before it (or use NLLLoss on log_softmax); a double softmax squashes the gradients")
    return None


def _unread_form(probe: LoopProbe, first_loss: float | None, class_labels: bool) -> Verdict:
    """A loss that is not a softmax cross-entropy or NLL: minus one (a first loss near -ln C), a TD loss whose target
    carries a gradient, binary cross-entropy with logits on outputs a Sigmoid already bounded, a binary
    cross-entropy read with its reduction (or given sigmoid(outputs) with logits), or else skipped."""
    flipped = _minus_log_c(probe, first_loss, class_labels)
    if flipped is not None:
        return flipped
    against = against_distributions(probe.distribution_reads, first_loss)
    if against is not None:
        return against
    gammas = [s["td_target_gamma"] for s in probe.steps if s.get("td_target_gamma")]
    if len(probe.steps) >= 2 and 3 * len(gammas) >= 2 * len(probe.steps):
        return Verdict("loop: loss", "warn", f"the TD target is differentiated too: the next states' outputs "
                       f"receive the loss's gradient times -{sorted(gammas)[len(gammas) // 2]:.3g} (the discount: "
                       f"gamma, or gamma^n for n-step returns) on {len(gammas)} of {len(probe.steps)} observed steps",
                       "a target without gradient",
                       "compute r + gamma * max_a Q(s', a) under torch.no_grad() (or .detach() it), with a target "
                       "network: Q-learning moves Q(s, a) towards a fixed target; a gradient through the target "
                       "also drags the next states' values towards the current ones (Sutton & Barto 2018, 9.3)")
    constant = _always_true(probe)
    if constant is not None:
        return constant
    reduced = _regression_reduction(probe)
    if reduced is not None:
        return reduced
    squashed = sigmoid_layer_verdict(probe.binary_reads, [s.get("bce_bounded") for s in probe.steps],
                                     probe.scores_sigmoid, len(probe.steps))
    if squashed is not None:
        return squashed
    bce = [s["bce_bounded"] for s in probe.steps if s.get("bce_bounded")]
    if bce and len(bce) == len(probe.steps):
        return Verdict("loop: loss", "warn", f"binary cross-entropy with logits on outputs {bce[0]} on all "
                       f"{len(bce)} observed steps", "raw logits (any real value) into BCEWithLogitsLoss",
                       "BCEWithLogitsLoss applies its own sigmoid: a Sigmoid before it squashes the scores into "
                       "[0.5, 0.73] and the loss cannot fall far; remove the Sigmoid (or use BCELoss on it)")
    binary = binary_loss_verdict(probe.binary_reads, len(probe.steps))
    if binary is not None:
        return binary
    if probe.steps and all(s["zero_sum"] for s in probe.steps):
        return Verdict("loop: loss", "skip", "skipped: a loss of softmax(outputs) (its gradient sums to 0 over the "
                       "classes) with no single label per row, and no targets given that it fits (soft targets such "
                       "as mixup's are read from w.step(loss, y=targets))", "-", "")
    return Verdict("loop: loss", "skip", "skipped: not a softmax cross-entropy or NLL on the output (or no output "
                   "gradient seen)", "-", "")


def _always_true(probe: LoopProbe) -> Verdict | None:
    """A warning when binary cross-entropy's target for one output column is 1 on every row of every observed step
    (3 at least): a target that never changes is fitted by a bias alone and carries nothing about the inputs, as
    the first level of ordinal targets ``y > k`` built from ranks 1..K is (Cao et al. 2020 use ranks 0..K-1)."""
    read = [s.get("always_true") for s in probe.steps]
    if len(read) < 3 or any(r is None for r in read):
        return None
    columns = sorted(set.intersection(*(set(r) for r in read)))
    width = probe.steps[0]["first_logits"].shape[1] if probe.steps[0]["first_logits"] is not None else None
    if not columns or width is None or len(columns) == width:
        return None
    return Verdict("loop: loss", "warn", f"the binary target of output column{'s' * (len(columns) > 1)} "
                   f"{', '.join(map(str, columns[:5]))} (of {width}) is 1 on every row of all {len(read)} observed "
                   "steps", "targets that differ between examples", "a target that never changes is learnt by the "
                   "bias alone and says nothing about the inputs: ordinal levels built as y > k from ranks 1..K make "
                   "the first level always true (use ranks 0..K-1); a label present in every example carries "
                   "nothing either")


def _minus_log_c(probe: LoopProbe, first_loss: float | None, class_labels: bool = False) -> Verdict | None:
    """A first loss of -ln C (C the output width, C >= 3) from a loss of unrecognised form on class-index labels
    (given to ``w.step(loss, y=y)``), or of the outputs' softmax (its gradient sums to 0 over the classes on the
    first observed step: ``trainwell watch`` reads no labels from a loss written by hand): a cross-entropy with its
    minus sign missing (hand-written, e.g. with label smoothing), which training maximizes. Without either a loss
    may start there by design (a Gaussian NLL)."""
    z = probe.steps[0]["first_logits"] if probe.steps else None
    softmax = bool(probe.steps) and bool(probe.steps[0]["zero_sum"])
    if not (class_labels or softmax) or first_loss is None or z is None or z.dim() < 2 or z.shape[-1] < 3 or \
            not math.isfinite(first_loss):
        return None
    c = z.shape[-1]
    if abs(first_loss + math.log(c)) > 0.1 * math.log(c):
        return None
    return Verdict("loop: loss", "fail", f"first loss {first_loss:.4g}, near -ln C = {-math.log(c):.4g} (C = {c})",
                   "a cross-entropy starts near +ln C", "the loss looks like minus a cross-entropy: training then "
                   "maximizes it and drives the right class down (accuracy below chance); a minus sign is missing "
                   "in the hand-written loss (-(target * log_softmax(z)).sum(1).mean())")


def _regression_reduction(probe: LoopProbe) -> Verdict | None:
    """A regression loss (MSE, Huber) read against the mean over its output elements on two thirds of the observed
    steps (two at least) from its value and gradient (:mod:`~trainwell.doctor.regression_reduction`): k accumulated
    micro-batches not divided by k fail, a loss counted twice is warned of, a sum over the elements or over the
    output columns (n or m x the mean's gradient) is named, a mean passes."""
    reads = probe.reductions
    found = [r for r in reads if r is not None]
    # Huber's steps read 'half' while every element sits in its quadratic zone, 'Huber' once some leave it
    names = {r.loss for r in found}
    if len(found) < 2 or 3 * len(found) < 2 * len(reads) or len({r.kind for r in found}) != 1 or \
            (len(names) != 1 and names != {"half", "Huber"}) or \
            found[0].kind == "scaled" and len({r.weight for r in found}) != 1:
        return None
    r = found[-1]
    name = {"MSE": "squared error", "half": "squared error / 2 (or Huber in its quadratic zone)"}.get(
        names.pop() if len(names) == 1 else "Huber", "Huber (SmoothL1) loss")
    seen = f"the loss's value against its gradient on {len(found)} of {len(reads)} observed steps"
    amp = f"; GradScaler's scale {r.scale:.6g} divided out" if r.scale != 1 else ""
    w = f"{r.weight:.0f}" if r.weight == round(r.weight) else f"{r.weight:.3g}"
    if r.kind == "undivided":
        return Verdict("loop: loss", "fail", f"{r.k} micro-batches accumulated per step, each micro-batch's {name} "
                       f"a full {'sum of per-column means' if r.weight > r.k else 'mean'}: the gradient is {w}x the "
                       f"mean's (read from {seen}{amp})", "loss / k for k accumulated micro-batches",
                       f"divide each micro-batch's loss by {r.k} before backward() (else the step is {r.k}x too "
                       "large)")
    if r.kind == "scaled":
        return Verdict("loop: loss", "warn", f"the {name}'s gradient is {w}x that of its mean over the output "
                       f"elements (read from {seen}{amp})", "a mean (weights summing to 1)",
                       "the loss is scaled: counted twice (added to itself), or multiplied by the wrong count")
    if r.kind == "columns":
        return Verdict("loop: loss", "info", f"summed over the {r.columns} output columns: each column's mean {name} "
                       f"added, {r.columns}x the mean over all {r.n} elements{amp}", f"a mean (read from {seen})",
                       f"the gradient is {r.columns}x the mean's, as with reduction='sum' over the columns: a rate "
                       f"tuned for the mean is {r.columns}x too large under SGD (Adam's steps barely change); use "
                       f"F.mse_loss(out, y) on all columns, or divide the sum by {r.columns}, if each column is not "
                       "meant to count as a whole loss")
    if r.kind == "sum":
        return Verdict("loop: loss", "info", f"summed {name} over {r.n} output elements (reduction='sum'){amp}",
                       f"a mean (read from {seen})", f"the gradient is {w}x the mean's and grows with the batch size: "
                       f"use reduction='mean', or divide a learning rate tuned for the mean by {w}")
    micro = f"; {r.k} micro-batches, each loss divided by {r.k}" if r.k > 1 else ""
    return Verdict("loop: loss", "pass", f"mean {name} over {r.n} output elements (read from {seen}){micro}{amp}",
                   "-")
