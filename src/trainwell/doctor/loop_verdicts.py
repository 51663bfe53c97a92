"""Verdicts on a hand-written training loop, from what :class:`~trainwell.doctor.loop_probe.LoopProbe` saw.

Each function returns one :class:`Verdict` whose check name starts with ``loop:``; a warn or fail names the cause
it saw (the learning-rate and bias/variance verdicts then defer to it, see :func:`defer`). The bugs are the ones
people write (PyTorch forum and Stack Overflow threads; Karpathy, "A recipe for training neural networks"): a
missing ``optimizer.zero_grad()``, ``zero_grad()`` between ``backward()`` and ``step()``, an optimizer built on
another copy of the model, layers unfrozen but never added to the optimizer, a detached branch, ``model.eval()``
left on, a per-epoch scheduler stepped per batch, a loss counted twice or over the wrong axis, cross-entropy on
probabilities, unshuffled or repeated batches, 1-based labels, unscaled inputs, clipping on every step, gradient
accumulation without dividing the loss.
"""

from __future__ import annotations

import math

import torch

from trainwell.doctor import registration
from trainwell.doctor.loop_probe import LoopProbe, held
from trainwell.doctor.output_layer import scores_dropout_verdict
from trainwell.doctor.registration import _group_names
from trainwell.doctor.verdict import Verdict


def optimizer_ownership(probe: LoopProbe) -> Verdict:
    """The optimizer must hold the parameters that receive gradients, and only the model's."""
    name = "loop: optimizer holds the parameters"
    added = probe.added_unheld()
    if added and probe.stopped_stepping():
        return Verdict(name, "warn", f"the optimizer given to doctor.watch stopped stepping after w.step() call "
                       f"{probe.last_active_call} of {probe.calls}, and {_group_names(added)} joined the model "
                       "while it was watched", "the optimizers given to doctor.watch step until the end",
                       "a new optimizer built for the replaced layer? The watch follows only the optimizers given to "
                       "it: start a new doctor.watch(model, new_optimizer) (or add the new layer to the old "
                       "optimizer with add_param_group)")
    if added:
        return Verdict(name, "fail", f"{_group_names(added)} joined the model while it was watched (a layer "
                       "replaced?) and no optimizer holds them: they never change",
                       "every trainable parameter in the optimizer",
                       "the optimizer still holds the old layer's parameters: add the new ones with "
                       "optimizer.add_param_group({'params': new_layer.parameters()}), or rebuild the optimizer")
    seen = sorted({n for s in probe.steps for n in s["not_owned"]})
    if probe.foreign and seen:
        return Verdict(name, "fail", f"the optimizer holds {len(probe.foreign)} tensors that are not this model's, "
                       f"and the model's {_group_names(seen)} receive gradients it never applies",
                       "the optimizer built on model.parameters() of the model you train",
                       "the optimizer was built on another copy of the model (a deepcopy, a model re-created or "
                       "re-loaded after the optimizer) or before a layer was replaced (model.head = ...): build it "
                       "after the final model, on model.parameters()")
    if seen:
        return Verdict(name, "fail", f"{_group_names(seen)} receive gradients but no optimizer param group holds "
                       "them: they never change", "every parameter that gets a gradient is in the optimizer",
                       "layers unfrozen (or added) after the optimizer was built: add them with "
                       "optimizer.add_param_group({'params': ...}) or rebuild the optimizer (if another optimizer "
                       "steps them, give doctor.watch the list of optimizers)")
    if probe.foreign:
        return Verdict(name, "info", f"the optimizer also steps {len(probe.foreign)} tensors outside this model "
                       f"(shapes {probe.foreign[:3]})", "-",
                       "a jointly trained module or a learnable loss weight; if the optimizer was meant for this "
                       "model alone, it is stepping another one")
    if not probe.steps:
        return Verdict(name, "skip", "skipped: no optimizer step was observed", "-", "")
    idle = [i for i, n in enumerate(probe.steps_by_optimizer) if n == 0]
    if idle and probe.opt_steps >= 3:
        i = idle[0]
        ids = held(probe.optimizers[i])
        names = [n for n, p in probe.named.items() if id(p) in ids]
        return Verdict(name, "fail", f"optimizer {i + 1} of {len(probe.optimizers)} never stepped in "
                       f"{probe.opt_steps} steps: {_group_names(names) if names else 'its parameters'} never change",
                       "every optimizer given to doctor.watch steps", "call its .step() in the loop (after "
                       "backward()), or leave it out of doctor.watch if it is not meant to train")
    return Verdict(name, "pass", "every parameter that receives a gradient is in the optimizer", "-")


def gradient_flow(probe: LoopProbe) -> Verdict:
    """``.grad`` at ``optimizer.step()`` must be exactly what this step's ``backward()`` passes delivered: not
    more (no ``zero_grad``: earlier steps' gradients add up), not nothing (cleared before the step), and clipping
    that scales it down on every step acts as a smaller learning rate."""
    name = "loop: gradients at optimizer.step()"
    steps = [s for s in probe.steps if s["present"]]
    if not steps:
        return Verdict(name, "skip", "skipped: no gradient was observed at an optimizer step", "-", "")
    cleared = [s for s in steps if s["cleared"] and s["cleared"] >= 0.5 * s["present"]]
    early = [s for s in cleared if s.get("before_backward")]
    if probe.stepped_before_forward and len(cleared) >= max(1, len(steps) // 2):
        early = cleared  # zero_grad(); step(); forward; backward(): each step comes before its batch's backward()
    if len(early) >= max(1, len(steps) // 2):
        return Verdict(name, "fail", f"optimizer.step() ran before loss.backward() on {len(early)} of {len(steps)} "
                       "observed steps: the step found .grad empty (the previous backward's gradients cleared by "
                       "zero_grad())", "backward() then step()", "call loss.backward() before optimizer.step() "
                       "(zero_grad(), forward, loss, backward(), step()): the model never updates otherwise")
    if len(cleared) >= max(1, len(steps) // 2):
        return Verdict(name, "fail", f".grad was empty at optimizer.step() on {len(cleared)} of {len(steps)} observed "
                       "steps although backward() produced gradients", "the gradients of this step's backward()",
                       "zero_grad() runs between loss.backward() and optimizer.step(): call it before backward() "
                       "(or after step())")
    later = [s for s in steps if s["step"] > 0 and s["incoming_norm"] > 0]
    grew = [s for s in later if s["manual_decay"] is None and
            (s["scale"] > 1.001 or (s["resid"] > 1e-3 and s["grad_norm"] > s["incoming_norm"]))]
    if later and len(grew) >= max(1, len(later) // 2):
        worst = max(s["grad_norm"] / max(s["incoming_norm"], 1e-30) for s in grew)
        return Verdict(name, "fail", f".grad holds earlier steps' gradients on {len(grew)} of {len(later)} observed "
                       f"steps (up to {worst:.3g}x this step's)", "the gradients of this step's backward()",
                       "gradients accumulate across steps: call optimizer.zero_grad() once per step (the loss "
                       "curve's rate advice does not apply until then)")
    # clip_grad_norm_ rescales every gradient by one factor: .grad stays parallel to what backward() gave
    clipped = [s for s in later if s["scale"] < 0.999 and s["resid"] < 1e-3 and not _power_of_two(s["scale"])]
    if len(later) >= 4 and len(clipped) >= 0.9 * len(later):
        norms = sorted(s["grad_norm"] for s in clipped)
        raw = sorted(s["incoming_norm"] for s in clipped)
        if isinstance(probe.optimizer, _SCALE_FREE):
            return Verdict(name, "info", f"clipped on {len(clipped)} of {len(later)} observed steps: the norm is "
                           f"pinned at {norms[len(norms) // 2]:.3g} while backward() gives {raw[0]:.3g}..{raw[-1]:.3g}",
                           "-", f"{type(probe.optimizer).__name__} divides each gradient by its running scale, so "
                           "clipping on every step changes the update little (it evens out the steps' weights, not "
                           "the learning rate); raise max_norm above the usual norm if only spikes should be clipped")
        return Verdict(name, "warn", f"clipped on {len(clipped)} of {len(later)} observed steps: the norm is pinned "
                       f"at {norms[len(norms) // 2]:.3g} while backward() gives {raw[0]:.3g}..{raw[-1]:.3g}",
                       "clipping only on rare spikes", "the clipping threshold is below the typical gradient norm: "
                       "every update is rescaled, which acts as a smaller, changing learning rate; raise max_norm "
                       "above the usual norm (or lower the learning rate instead)")
    accumulated = max(s["backwards"] for s in steps)
    note = f"; {accumulated} backward() passes per step" if accumulated > 1 else ""
    decay = [s["manual_decay"] for s in later if s["manual_decay"] is not None]
    if decay:
        note += f"; weight decay {decay[0]:.3g} x w added to .grad by hand"
    return Verdict(name, "pass", f".grad matched this step's backward() on {len(steps)} observed steps{note}", "-")


def _power_of_two(scale: float) -> bool:
    """AMP's GradScaler unscales .grad by a power of two before the step: not clipping."""
    if not (scale > 0 and math.isfinite(scale)):
        return False
    k = -math.log2(scale)
    return k >= 1 and abs(k - round(k)) < 1e-6


def gradient_reach(probe: LoopProbe) -> Verdict:
    """Parameters that require grad should receive one; frozen ones are listed so that "frozen by mistake" shows."""
    name = "loop: every trainable parameter learns"
    frozen = f"frozen: {_group_names(probe.frozen)}" if probe.frozen else ""
    if len(probe.steps) < 2:
        return Verdict(name, "skip", "skipped: fewer than 2 observed steps", "-", "")
    starved = [n for n, p in probe.named.items() if p.requires_grad and n not in probe.received]
    if probe.game is not None and len(probe.optimizers) > 1:  # the other players get gradients between the
        first = held(probe.optimizer)  # its steps are the observed ones
        owned = probe._owned()
        starved = [n for n in starved if id(probe.named[n]) in first or id(probe.named[n]) not in owned]
    if starved:
        none = not probe.received
        value = ("no parameter ever received a gradient" if none else
                 f"never received a gradient: {_group_names(starved)}") + (f"; {frozen}" if frozen else "")
        return Verdict(name, "fail" if none else "warn", value, "a gradient for every parameter that requires one",
                       "a detached branch (.detach(), .item(), .data, torch.no_grad in forward), an auxiliary loss "
                       "left out of the total, an unused layer, or every ReLU after them dead (see the monitors): "
                       "these parameters never learn")
    if frozen:
        return Verdict(name, "info", frozen + f" ({_frozen_share(probe):.0%} of the parameters)", "-",
                       "frozen parameters never change: if they should train, set requires_grad_(True) and add them "
                       "to the optimizer")
    return Verdict(name, "pass", f"all {len(probe.named)} parameter tensors received gradients", "-")


def _frozen_share(probe: LoopProbe) -> float:
    total = sum(p.numel() for p in probe.named.values())
    return sum(probe.named[n].numel() for n in probe.frozen) / max(total, 1)


def weight_decay(probe: LoopProbe) -> Verdict | None:
    """Weight decay coupled to the gradient (SGD's or Adam's ``weight_decay``) against the loss's gradient at
    the first step: at initialization the data gradient should dominate (at a minimum of loss + L2 the two
    balance, so later steps are not read). None without such decay."""
    first = next((s["decay_ratio"] for s in probe.steps if s["step"] == 0 and s.get("decay_ratio")), None)
    if first is None:
        return None
    wd, ratio = first
    name = "loop: weight decay"
    # a fine-tuned model starts near a minimum (a small gradient): a usual decay then out-pulls it by design
    if ratio > 1.0 and wd >= 1e-2:
        return Verdict(name, "warn", f"weight_decay={wd:g} pulls the weights {ratio:.3g}x harder than the loss's "
                       "gradient at the first step", "decay well below the data gradient at initialization",
                       "the decay dominates the update and shrinks the weights towards 0 (the model underfits): "
                       "typical values are 1e-5..5e-3 for SGD and Adam (0.5 may be a typo for 5e-4)")
    return Verdict(name, "pass", f"weight_decay={wd:g}: {ratio:.2g}x the loss's gradient at the first step", "-")


def module_mode(probe: LoopProbe) -> Verdict:
    """Training steps in ``train()`` mode, validation in ``eval()`` mode (only matters with dropout/BatchNorm)."""
    name = "loop: train/eval mode"
    if not probe.mode_matters():
        return Verdict(name, "skip", "skipped: no dropout or BatchNorm, the mode changes nothing", "-", "")
    if probe.train_steps and probe.eval_mode_steps >= 0.5 * probe.train_steps:
        return Verdict(name, "fail", f"{probe.eval_mode_steps} of {probe.train_steps} training steps ran in eval mode",
                       "model.train() during training", "dropout is off and BatchNorm uses its running statistics "
                       "while training: call model.train() at the start of each epoch (after validating)")
    if probe.train_steps and probe.eval_mode_steps >= max(2, 0.05 * probe.train_steps):
        return Verdict(name, "warn", f"{probe.eval_mode_steps} of {probe.train_steps} training steps ran in eval mode",
                       "model.train() during training", "part of each epoch trains in eval mode: a validation run "
                       "mid-epoch (model.eval()) that is not followed by model.train(); switch back after every "
                       "evaluation")
    if probe.train_mode_validations:
        return Verdict(name, "fail", f"{probe.train_mode_validations} of {probe.validations} validations ran in train "
                       "mode", "model.eval() during validation", "dropout stays on and BatchNorm learns from the "
                       "validation batches: call model.eval() before validating (and model.train() after)")
    return Verdict(name, "pass", f"train mode in {probe.train_steps - probe.eval_mode_steps} of "
                   f"{probe.train_steps} steps, eval mode in {probe.validations} validations", "-")


def lr_schedule(probe: LoopProbe) -> Verdict:
    """The learning rate the optimizer applied, step by step; a schedule that collapses it early (a per-epoch
    scheduler stepped per batch) is named."""
    name = "loop: learning rate applied"
    if not [v for v in probe.lrs if math.isfinite(v)]:
        return Verdict(name, "skip", "skipped: the optimizer never stepped", "-", "")
    width = max((len(row) for row in probe.group_lrs), default=0)  # groups may be added mid-run
    groups = [[row[i] if i < len(row) else math.nan for row in probe.group_lrs] for i in range(width)] \
        if probe.group_lrs else [probe.lrs]
    verdicts = [_group_schedule(name, [v for v in lrs if math.isfinite(v)], i if len(groups) > 1 else None)
                for i, lrs in enumerate(groups)]
    worst = next((v for v in verdicts if v.status != "pass"), verdicts[0])
    if len(groups) > 1 and worst.status == "pass":
        rates = ", ".join(f"{g[-1]:.3g}" for g in groups if g)
        return Verdict(name, "pass", f"{worst.value}; {len(groups)} param groups at {rates} at the last step", "-")
    return worst


def _group_schedule(name: str, lrs: list[float], group: int | None) -> Verdict:
    """The schedule verdict of one param group's rates (``group``: its index when there are several)."""
    if not lrs:
        return Verdict(name, "pass", "no finite rate", "-")
    where = f"param group {group}: " if group is not None else ""
    peak = max(lrs)
    value = f"{lrs[0]:.3g} at step 1 -> {lrs[-1]:.3g} at step {len(lrs)} (peak {peak:.3g})"
    low = next((i for i, v in enumerate(lrs) if v < 0.01 * peak and i > lrs.index(peak)), None)
    if peak > 0 and low is not None and low < len(lrs) // 2:
        return Verdict(name, "warn", f"{where}collapsed below 1% of its peak at step {low + 1} of {len(lrs)}: " +
                       value,
                       "a schedule spread over the run", "the rate vanishes early: a per-epoch scheduler stepped "
                       "per batch? Call scheduler.step() once per epoch, or size it in steps")
    rising = all(b >= a for a, b in zip(lrs, lrs[1:], strict=False)) and lrs[-1] >= 2 * lrs[0] > 0
    if len(lrs) >= 20 and rising and len(set(lrs)) <= max(2, len(lrs) // 4):  # a few jumps: epochs
        return Verdict(name, "warn", f"{where}still rising at the last step, in {len(set(lrs)) - 1} jumps: " + value,
                       "a warm-up that ends, then the schedule's decay", "the rate only rose, a few times over the "
                       "run: a per-batch schedule (OneCycleLR, warm-up) stepped once per epoch? Call "
                       "scheduler.step() after every optimizer.step(), or size it in epochs")
    return Verdict(name, "pass", value, "-")


def loss_scale(probe: LoopProbe, first_loss: float | None, class_labels: bool = False) -> Verdict:
    """The gradient the loss sends to the logits says what the loss is (:mod:`~trainwell.doctor.loss_form`): its
    total weight must be 1 (a mean over the step's examples), softmax over the class axis, on logits."""
    name = "loop: loss"
    dropped = scores_dropout_verdict(probe.scores_dropout, name)
    if dropped is not None:
        return dropped
    steps = [s for s in probe.steps if s["form"] is not None]
    if not steps:
        return _unread_form(probe, first_loss, class_labels)
    s = steps[0]
    form, weight, k = s["form"], s["loss_weight"], s["backwards"]
    amp = ""
    if _power_of_two(s["scale"]) and s["resid"] < 1e-3:  # AMP's GradScaler: backward() ran on loss x 2^k
        weight *= s["scale"]
        amp = f"; GradScaler's scale {1 / s['scale']:.6g} divided out"
    wrong = _wrong_form(name, steps, first_loss)
    if wrong is not None:
        return wrong
    bounded = [t["bounded"] for t in steps]
    if form in ("cross_entropy", "two_classes") and all(bounded):
        loss = "cross-entropy" if form == "cross_entropy" else "a classification loss (2 classes)"
        return Verdict(name, "warn", f"{loss} on outputs {bounded[0]} on all {len(steps)} observed steps",
                       "raw logits (any real value) into the loss", "an activation after the last layer "
                       "(Sigmoid, ReLU, Softmax) bounds the logits, so the loss cannot fall far and the gradients "
                       "shrink: remove it (cross-entropy applies its own softmax)")
    if form == "two_classes":
        return Verdict(name, "skip", "skipped: with 2 classes the loss's form and weight cannot be read from its "
                       "gradient (any zero-sum gradient fits); its outputs are raw logits", "-", "")
    rows = max(s["rows"], 1)
    formula = "NLL" if form == "nll" else "cross-entropy"
    if abs(weight - 1) <= 0.02:
        value = f"mean {formula} (weights sum to {weight:.3g}){amp}"
    elif abs(weight - rows) <= 0.02 * rows:
        return Verdict(name, "info", f"summed {formula} over {rows} examples (reduction='sum')", "-",
                       f"the gradient is {rows}x the mean's and grows with the batch size: use reduction='mean', or "
                       f"divide a learning rate tuned for the mean by {rows}")
    elif k > 1 and abs(weight - k) <= 0.02 * k:
        return Verdict(name, "fail", f"{k} micro-batches accumulated per step, each loss a full mean: the gradient "
                       f"is {weight:.3g}x the mean's", "loss / k for k accumulated micro-batches",
                       f"divide each micro-batch's loss by {k} before backward() (else the step is {k}x too large)")
    elif (max(s.get("spread") or 1.0, _across_steps(steps)) > 1.5) and abs(weight - round(weight)) > 0.02 * weight:
        # per-example weights that differ (sample weights, a focal term, rewards) and sum to no whole multiple of
        # the mean: a weighted loss by design, not one counted twice
        value = (f"{formula} with per-example weights (they differ between examples or steps), summing to "
                 f"{weight:.3g}{amp}")
        return Verdict(name, "pass", value, "-")
    else:
        return Verdict(name, "warn", f"the {formula}'s gradient is {weight:.3g}x that of its mean over the step's "
                       f"{rows} examples", "weights summing to 1", "the loss is scaled: counted twice (added to "
                       "itself, or backward() called on it twice), or divided/multiplied by the wrong count")
    c = s["classes"]
    # the loss of a model with several heads adds their terms: its first value is not cross-entropy's alone
    if first_loss is not None and c and c > 1 and s["step"] == 0 and math.isfinite(first_loss) and \
            not probe.multi_output:
        expected = weight * math.log(c) / max(k, 1)
        # with k accumulated micro-batches the loss given to w.step may be one divided part or the whole: ln C
        if first_loss > 2.0 * weight * math.log(c):
            return Verdict(name, "warn", f"first loss {first_loss:.4g} vs {expected:.4g} (ln C, C = {c} from the "
                           "output width)", "near ln C at initialization", "initial outputs are far from uniform: "
                           "inputs far from unit scale, a last layer initialized too large, or a sum after it "
                           "without normalization (doctor.check on a batch names which)")
        value += f"; first loss {first_loss:.4g} vs ln C = {math.log(c):.4g}"
    return Verdict(name, "pass", value, "-")


def _across_steps(steps: list[dict]) -> float:
    """Largest / smallest total weight of the loss over the observed steps of one form: a constant factor (a loss
    counted twice) gives 1; weights that follow the model's outputs (a focal term) change as it learns. Scaled
    so that a 10% change between steps counts like a 1.5x spread within one."""
    weights = [s["loss_weight"] for s in steps if s["form"] == steps[0]["form"] and s["loss_weight"]]
    if len(weights) < 2 or min(weights) <= 0:
        return 1.0
    return 1.0 + 5.0 * (max(weights) / min(weights) - 1.0)


#: optimizers whose update is (nearly) invariant to one scale on every gradient (Kingma & Ba 2015, section 2.1)
_SCALE_FREE = (torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop, torch.optim.Adagrad, torch.optim.Adamax,
               torch.optim.NAdam, torch.optim.RAdam, torch.optim.Adadelta)


def _wrong_form(name: str, steps: list[dict], first_loss: float | None) -> Verdict | None:
    """The loss's form when it is wrong (or not a supervised one): a softmax over the batch or over runs of
    values, -p(label) maximized, NLL on raw scores, cross-entropy on probabilities; a policy gradient (info)."""
    s = steps[0]
    form = s["form"]
    if form == "cross_entropy_over_batch":
        return Verdict(name, "fail", "the softmax is taken over the batch axis (dim 0), not the classes",
                       "log_softmax / softmax over the class axis", "use dim=1 (or dim=-1) in log_softmax/softmax")
    if form == "probability_not_log":
        return Verdict(name, "fail", "the loss's gradient is -p(label)'s: the label's probability, not its log, is "
                       "maximized", "cross-entropy: -log softmax(z)[label]", "a log is missing in the hand-written "
                       "loss: use log_softmax, e.g. -(target * F.log_softmax(z, 1)).sum(1).mean() (for label "
                       "smoothing, nn.CrossEntropyLoss(label_smoothing=0.1))")
    if any(t["form"] == "signed_weights" for t in steps):  # a first step whose advantages were all >= 0 too
        return Verdict(name, "info", "cross-entropy on the model's own samples with per-example weights of both "
                       "signs (a policy gradient: -log p(action) x advantage)", "-",
                       "a policy-gradient loss is not a supervised curve: judge the run by its rewards")
    if form == "scrambled_classes":
        c = s["classes"]
        return Verdict(name, "fail", f"the loss's softmax runs over groups of {c} consecutive values of the "
                       f"(B, {c}, ...) outputs, not over their class axis (dim 1)", "cross-entropy over dim 1",
                       f"reshape(-1, {c}) / view(-1, {c}) on (B, C, H, W) or (B, C, T) outputs mixes positions and "
                       f"classes: move the class axis last first (out.movedim(1, -1).reshape(-1, {c})), or give "
                       "cross_entropy the (B, C, ...) outputs and (B, ...) targets as they are")
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
    """A loss that is not a softmax cross-entropy or NLL: minus one (a first loss near -ln C), binary cross-entropy
    with logits on outputs a Sigmoid already bounded, or else skipped."""
    flipped = _minus_log_c(probe, first_loss, class_labels)
    if flipped is not None:
        return flipped
    bce = [s["bce_bounded"] for s in probe.steps if s.get("bce_bounded")]
    if bce and len(bce) == len(probe.steps):
        return Verdict("loop: loss", "warn", f"binary cross-entropy with logits on outputs {bce[0]} on all "
                       f"{len(bce)} observed steps", "raw logits (any real value) into BCEWithLogitsLoss",
                       "BCEWithLogitsLoss applies its own sigmoid: a Sigmoid before it squashes the scores into "
                       "[0.5, 0.73] and the loss cannot fall far; remove the Sigmoid (or use BCELoss on it)")
    return Verdict("loop: loss", "skip", "skipped: not a softmax cross-entropy or NLL on the output (or no output "
                   "gradient seen)", "-", "")


def _minus_log_c(probe: LoopProbe, first_loss: float | None, class_labels: bool = False) -> Verdict | None:
    """A first loss of -ln C (C the output width, C >= 3) from a loss of unrecognised form on class-index labels
    (given to ``w.step(loss, y=y)``): a cross-entropy with its minus sign missing (hand-written, e.g. with label
    smoothing), which training maximizes. Without class labels a loss may start there by design (a Gaussian NLL)."""
    z = probe.steps[0]["first_logits"] if probe.steps else None
    if not class_labels or first_loss is None or z is None or z.dim() < 2 or z.shape[-1] < 3 or \
            not math.isfinite(first_loss):
        return None
    c = z.shape[-1]
    if abs(first_loss + math.log(c)) > 0.1 * math.log(c):
        return None
    return Verdict("loop: loss", "fail", f"first loss {first_loss:.4g}, near -ln C = {-math.log(c):.4g} (C = {c})",
                   "a cross-entropy starts near +ln C", "the loss looks like minus a cross-entropy: training then "
                   "maximizes it and drives the right class down (accuracy below chance); a minus sign is missing "
                   "in the hand-written loss (-(target * log_softmax(z)).sum(1).mean())")


def stepped(probe: LoopProbe, calls: int) -> Verdict | None:
    """``w.step`` calls with no ``optimizer.step()`` at all: the loop never updates (or steps another optimizer);
    many more ``w.step`` calls than optimizer steps: ``w.step`` is called per micro-batch (the observed steps and
    the update/weight ratios then read steps that did not update). Steps that AMP's GradScaler skipped on
    non-finite gradients are neither."""
    name = "loop: optimizer.step() runs"
    if calls >= 3 and probe.opt_steps == 0:
        return Verdict(name, "fail", f"{calls} steps recorded, optimizer.step() never ran",
                       "one optimizer.step() per step", "call optimizer.step() after loss.backward() (on the "
                       "optimizer given to doctor.watch)")
    if calls >= 3 and probe.opt_steps >= 1.5 * calls and probe.game is None:  # a critic steps k times by design
        return Verdict(name, "warn", f"optimizer.step() ran {probe.opt_steps} times in {calls} w.step() calls",
                       "one optimizer.step() per w.step()", "optimizer.step() runs more than once per batch: each "
                       "call applies the same gradients again (a larger, hidden learning rate); call it once per "
                       "batch, then w.step(loss)")
    idle = probe.idle_calls - probe.skipped
    if probe.opt_steps >= 3 and idle >= max(3, calls // 3) and not (probe.stopped_stepping() and probe.added_unheld()):
        return Verdict(name, "warn", f"w.step() ran {calls} times, {idle} of them with no optimizer step since the "
                       "previous one",
                       "one w.step() per optimizer.step()",
                       "call w.step(loss) once per optimizer step, after optimizer.step() (with gradient "
                       "accumulation: after the step that ends the k micro-batches), so that each observed step is "
                       "an update")
    return None


def unregistered_verdict(names: list[str] | None) -> Verdict | None:
    """The pre-flight's fail for unregistered tensors, when the first step's loss showed any."""
    return registration.unregistered_verdict(names) if names else None


#: a fired loop cause makes these downstream verdicts defer to it
DOWNSTREAM = ("learning rate (loss curve)", "bias/variance", "monitor: update/weight ratio")


def defer(verdicts: list[Verdict]) -> list[Verdict]:
    """The learning-rate, bias/variance and update-ratio verdicts defer to a loop cause that fired (warn/fail):
    their reading (even a "good") follows from the bug, and their advice would point the wrong way (no "lower the
    learning rate" when gradients accumulate, no "raise it" when the optimizer does not hold the parameters). They
    become 'info', naming the cause. Frozen parameters (an 'info') are named in a flat or slow learning-rate
    verdict."""
    causes = [v for v in verdicts if (v.check.startswith("loop:") or v.check == "parameters registered")
              and v.status in ("warn", "fail")]
    frozen = next((v for v in verdicts if v.check == "loop: every trainable parameter learns" and v.status == "info"),
                  None)
    nan_inputs = next((c for c in causes if c.check == "loop: inputs" and "NaN" in str(c.value)), None)
    summed = next((v for v in verdicts if v.check == "loop: loss" and v.status == "info"
                   and str(v.value).startswith("summed")), None)
    from_start = next((v for v in verdicts if v.check == DOWNSTREAM[0] and "before any update" in str(v.value)),
                      None)
    out = []
    for v in verdicts:
        if from_start is not None and nan_inputs is None and v.check.startswith("monitor: non-finite") and \
                v.status == "fail":
            v = Verdict(v.check, "info", f"{v.value} (the loss was not finite at step 0, before any update)",
                        v.expected, "the forward pass gives NaN/Inf from the start, so the learning rate is not the "
                        "cause: a softmax over a row that is all -inf (every attention key masked), a log of 0, a "
                        "division by 0; doctor.check(model, x, y, loss_fn) names the first module that outputs it")
        elif nan_inputs is not None and v.check.startswith("monitor: non-finite") and v.status == "fail":
            v = Verdict(v.check, "info", f"{v.value} (explained by 'loop: inputs')", v.expected,
                        "the inputs hold NaN/Inf: fix the data first")
        elif v.check in DOWNSTREAM and v.status in ("pass", "warn", "fail") and causes:
            names = ", ".join(f"'{c.check}'" for c in causes[:2])
            v = Verdict(v.check, "info", f"{v.value} (explained by {names})", v.expected,
                        f"fix {names} first: this reading follows from it")
        elif v.check == DOWNSTREAM[0] and summed is not None and str(v.value).startswith("too high"):
            v = Verdict(v.check, v.status, v.value, v.expected, f"{v.advice}; the loss is {summed.value}: "
                        f"{summed.advice.split(': ', 1)[-1]}")
        elif v.check == DOWNSTREAM[0] and v.status == "warn" and frozen is not None and \
                str(v.value).startswith(("flat", "too low")):
            v = Verdict(v.check, "warn", f"{v.value}; {frozen.value}", v.expected,
                        "frozen parameters do not learn: if they should, unfreeze them (requires_grad_(True)) and "
                        "add them to the optimizer; otherwise " + (v.advice or ""))
        out.append(v)
    return out
