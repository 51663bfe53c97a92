"""Verdicts on a hand-written training loop, from what :class:`~trainwell.doctor.loop_probe.LoopProbe` saw.

Each function returns one :class:`Verdict` whose check name starts with ``loop:``; a warn or fail names the cause
it saw (the learning-rate and bias/variance verdicts then defer to it, see
:func:`trainwell.doctor.loop_deferral.defer`). The bugs are the ones
people write (PyTorch forum and Stack Overflow threads; Karpathy, "A recipe for training neural networks"): a
missing ``optimizer.zero_grad()``, ``zero_grad()`` between ``backward()`` and ``step()``, an optimizer built on
another copy of the model, layers unfrozen but never added to the optimizer, a detached branch, ``model.eval()``
left on, a loss counted twice or over the wrong axis, cross-entropy on probabilities, unshuffled or repeated
batches, 1-based labels, unscaled inputs, clipping on every step, gradient accumulation without dividing the loss.
The loss's own verdict is in :mod:`trainwell.doctor.loop_loss`, the inputs' and labels' in
:mod:`trainwell.doctor.loop_data`, the learning-rate schedule's in :mod:`trainwell.doctor.loop_schedule`.
"""

from __future__ import annotations

import math

from trainwell.doctor import checkpointing, no_grad_layers, registration
from trainwell.doctor.copied_model import HOLDS_COPY
from trainwell.doctor.loop_probe import LoopProbe
from trainwell.doctor.loop_readings import added_unheld, mode_matters
from trainwell.doctor.loop_step_hooks import ADAPTIVE
from trainwell.doctor.loss_scaling import clipped_before_unscale, static_scale
from trainwell.doctor.optimizer_check import duplicates_verdict, empty_group_verdict
from trainwell.doctor.other_optimizers import other_optimizers_verdict
from trainwell.doctor.plurals import counted
from trainwell.doctor.registration import _group_names
from trainwell.doctor.step_record import held
from trainwell.doctor.stepped_validation import stepped_validation
from trainwell.doctor.value_clipping import value_clipping
from trainwell.doctor.verdict import Verdict

#: parameters stepped by an optimizer the watch was not given: its readings are short of them, nothing else
UNREAD_OPTIMIZER = "stepped by an optimizer not given to doctor.watch"


def optimizer_ownership(probe: LoopProbe) -> Verdict:
    """The optimizer must hold the parameters that receive gradients, and only the model's."""
    name = "loop: optimizer holds the parameters"
    added = added_unheld(probe)
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
    if probe.copy_trained:
        return Verdict(name, "fail", HOLDS_COPY.format(n=probe.copy_trained),
                       "the optimizer built on model.parameters() of the model whose forward computes the loss",
                       "build the optimizer on the parameters of the model the loop calls (optimizer = "
                       "SGD(model.parameters(), ...)), not on a copy of it (a deepcopy for an EMA or a checkpoint); "
                       "update such a copy from the trained model after each step")
    seen = sorted({n for s in probe.steps for n in s["not_owned"]})
    if probe.foreign and seen:
        return Verdict(name, "fail", f"the optimizer holds {len(probe.foreign)} tensors that are not this model's, "
                       f"and the model's {_group_names(seen)} receive gradients it never applies",
                       "the optimizer built on model.parameters() of the model you train",
                       "the optimizer was built on another copy of the model (a deepcopy, a model re-created or "
                       "re-loaded after the optimizer) or before a layer was replaced (model.head = ...): build it "
                       "after the final model, on model.parameters()")
    if seen and set(seen) <= probe.unheld_moved:
        return Verdict(name, "warn", f"{UNREAD_OPTIMIZER}: {_group_names(seen)} receive gradients and change "
                       "between steps, but no optimizer given to doctor.watch holds them",
                       "every optimizer that steps the model given to doctor.watch",
                       "give doctor.watch the list of optimizers (doctor.watch(model, [optimizer, other_optimizer])) "
                       "so that their steps are read too")
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
                       f"{counted(probe.opt_steps, 'step')}: {_group_names(names) if names else 'its parameters'} "
                       "never change",
                       "every optimizer given to doctor.watch steps", "call its .step() in the loop (after "
                       "backward()), or leave it out of doctor.watch if it is not meant to train")
    empty = duplicates_verdict(name, probe.optimizers, probe.named) or empty_group_verdict(name, probe.optimizers)
    if empty is not None:
        return empty
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
    dropped = [s for s in steps if s.get("dropped")]
    if len(dropped) >= max(1, len(steps) // 2):
        return _dropped_passes(name, dropped, len(steps))
    later = [s for s in steps if s["step"] > 0 and s["incoming_norm"] > 0]
    grew = [s for s in later if s["manual_decay"] is None and
            (s["scale"] > 1.001 or (s["resid"] > 1e-3 and s["grad_norm"] > s["incoming_norm"]))]
    if later and len(grew) >= max(1, len(later) // 2):
        worst = max(s["grad_norm"] / max(s["incoming_norm"], 1e-30) for s in grew)
        return Verdict(name, "fail", f".grad holds earlier steps' gradients on {len(grew)} of {len(later)} observed "
                       f"steps (up to {worst:.3g}x this step's)", "the gradients of this step's backward()",
                       "gradients accumulate across steps: call optimizer.zero_grad() once per step (the loss "
                       "curve's rate advice does not apply until then)")
    others = other_optimizers_verdict(name, probe.other_reads, len(probe.optimizers))
    if others is not None:
        return others
    crossed = [s for s in later if s.get("crossed")]
    if probe.game is not None and len(crossed) >= max(1, len(later) // 2):
        return Verdict(name, "warn", f".grad held a backward() pass from before another optimizer's step on "
                       f"{len(crossed)} of {len(later)} observed steps: the other player's loss (a GAN's "
                       "discriminator loss on samples not detached) is added to this player's gradients",
                       "only this player's own loss in .grad at its step", "detach the samples for the other "
                       "player's loss (D(fake.detach())), or call this optimizer's zero_grad() after the other "
                       "player's step, right before this player's backward()")
    by_value = value_clipping(name, probe, later)
    if by_value is not None:
        return by_value
    # clip_grad_norm_ rescales every gradient by one factor: .grad stays parallel to what backward() gave
    clipped = [s for s in later if s["scale"] < 0.999 and s["resid"] < 1e-3 and not _power_of_two(s["scale"])]
    if len(later) >= 4 and len(clipped) >= 0.9 * len(later):
        norms = sorted(s["grad_norm"] for s in clipped)
        early = clipped_before_unscale(name, clipped, len(later))
        if early is not None:
            return early
        raw = sorted(s["incoming_norm"] * grad_scaler_unscale(s) for s in clipped)  # GradScaler's scale divided out
        if isinstance(probe.optimizer, ADAPTIVE):
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
    note = f"; {counted(accumulated, 'backward() pass')} per step" if accumulated > 1 else ""
    decay = [s["manual_decay"] for s in later if s["manual_decay"] is not None]
    if decay:
        note += f"; weight decay {decay[0]:.3g} x w added to .grad by hand"
    return Verdict(name, "pass", f".grad matched this step's backward() on {counted(len(steps), 'observed step')}"
                   f"{note}", "-")


def _dropped_passes(name: str, dropped: list[dict], observed: int) -> Verdict:
    """``.grad`` lost the gradients of earlier ``backward()`` passes of the step (``zero_grad()`` between them,
    no optimizer step after them): a fail when two or more passes were thrown away (k >= 3 micro-batches, each
    zeroed), a warning for one of two (which may be a backward() run only for its input gradients)."""
    s = max(dropped, key=lambda t: t["dropped"])
    kept = s["backwards"] - s["dropped"]
    status = "fail" if s["dropped"] >= 2 else "warn"
    return Verdict(name, status, f".grad held only the last {kept} of {s['backwards']} backward() passes at "
                   f"optimizer.step() on {len(dropped)} of {observed} observed steps: zero_grad() ran between them",
                   "the gradients of every backward() pass since the last step",
                   "zero_grad() inside the gradient accumulation loop throws away the earlier micro-batches' "
                   "gradients (the step sees one micro-batch, a smaller and noisier update): call zero_grad() once "
                   "per optimizer step, after step(), not before each micro-batch's backward()" +
                   ("; if the earlier pass was run only for input gradients (adversarial examples), use "
                    "torch.autograd.grad(loss, x) instead of backward()" if status == "warn" else ""))


def _power_of_two(scale: float) -> bool:
    """AMP's GradScaler unscales .grad by a power of two before the step: not clipping."""
    if not (scale > 0 and math.isfinite(scale)):
        return False
    k = -math.log2(scale)
    return k >= 1 and abs(k - round(k)) < 1e-6


def grad_scaler_unscale(step: dict) -> float:
    """1 / the loss scale ``backward()`` ran under on the observed step (AMP's GradScaler: the gradients the loss
    sent to the outputs carry its scale): the scale of the GradScaler stepping the optimizer, else the power of two
    ``.grad`` was divided by before the step; 1 when ``.grad`` is what ``backward()`` gave."""
    if step.get("amp_scale"):
        return 1 / step["amp_scale"]
    if _power_of_two(step["scale"]) and step["resid"] < 1e-3:
        return step["scale"]
    static = static_scale(step)  # (loss * W).backward(), .grad divided by W and then clipped
    return 1 / static[0] if static is not None and static[1] == "divided" else 1.0


#: why parameters get no gradient at all: backward never reaches them
_UNREACHED_ADVICE = ("a detached branch (.detach(), .item(), .data, torch.no_grad in forward), an auxiliary loss "
                     "left out of the total, an unused layer, or every ReLU after them dead (see the monitors): these "
                     "parameters never learn")
#: why backward reaches parameters with exactly 0: the loss does not depend on what they compute
_ZEROED_ADVICE = ("the loss does not depend on what they compute: a loss term multiplied by 0 (a task's loss "
                  "weight of 0), a mask that zeroes their output, or every unit feeding them dead (see the "
                  "monitors): these parameters never learn")


def gradient_reach(probe: LoopProbe, reentrant_cut: bool = False) -> Verdict:
    """Parameters that require grad should receive one; frozen ones are listed so that "frozen by mistake" shows.
    Of those that receive none, the ones backward reaches with exactly 0 (a loss term weighted by 0) are told
    from the ones it never reaches (a detached branch); ``reentrant_cut``: torch warned while the loop ran that a
    reentrant checkpointed segment had no input that requires a gradient, which cuts its parameters off."""
    name = "loop: every trainable parameter learns"
    frozen = f"frozen: {_group_names(probe.frozen)}" if probe.frozen else ""
    if len(probe.steps) < 2:
        return Verdict(name, "skip", "skipped: fewer than 2 observed steps", "-", "")
    starved = [n for n, p in probe.named.items() if p.requires_grad and n not in probe.received]
    if starved and not probe.received and probe.assigned:  # no backward at all: the loop writes .grad itself
        return _written_gradients(name, probe, starved)
    if probe.game is not None and len(probe.optimizers) > 1:  # the other players get gradients between the
        first = held(probe.optimizer)  # its steps are the observed ones
        owned = probe.held_now()
        starved = [n for n in starved if id(probe.named[n]) in first or id(probe.named[n]) not in owned]
    cancelled = [n for n in starved if _cancels(probe, n)]
    starved = [n for n in starved if n not in cancelled]
    if starved:
        none = not probe.received
        zeroed = [n for n in starved if n in probe.reached]
        unreached = [n for n in starved if n not in probe.reached]
        if none and probe.copy_trained:
            return Verdict(name, "info", "no parameter ever received a gradient (explained by 'loop: optimizer "
                           "holds the parameters')", "a gradient for every parameter that requires one",
                           "fix 'loop: optimizer holds the parameters' first: the loss is computed by another model")
        if none:
            value = "no parameter ever received a gradient"
        elif zeroed and not reentrant_cut:
            value = (f"never received a gradient: {_group_names(unreached)}; " if unreached else "") + \
                f"received a gradient of exactly 0 on every observed step: {_group_names(zeroed)}"
        else:
            value = f"never received a gradient: {_group_names(starved)}"
        value += f"; {frozen}" if frozen else ""
        if cancelled:
            value += f"; the gradient of {_group_names(cancelled)} cancels (a bias before a difference of two outputs)"
        cut, checkpointed = probe.no_grad_layers.cut(unreached)
        if reentrant_cut:
            value += " (a reentrant checkpointed segment had no input that requires a gradient)"
            advice = checkpointing.ADVICE
        elif cut:
            value += f"; {_group_names(cut)} ran under torch.no_grad() inside the training forward" + \
                (" (in torch.utils.checkpoint)" if checkpointed else "")
            advice = no_grad_layers.advice(checkpointed)
        elif zeroed and not unreached:
            advice = _ZEROED_ADVICE
        elif zeroed:
            advice = f"{_UNREACHED_ADVICE}; those with a gradient of exactly 0: {_ZEROED_ADVICE}"
        else:
            advice = _UNREACHED_ADVICE
        return Verdict(name, "fail" if none else "warn", value, "a gradient for every parameter that requires one",
                       advice)
    if cancelled:
        return Verdict(name, "info", f"the gradient of {_group_names(cancelled)} is exactly 0 on every observed step, "
                       f"while its layer's weight learns" + (f"; {frozen}" if frozen else ""),
                       "a gradient for every parameter that requires one",
                       "its gradient cancels (a bias before a difference of two outputs, as a WGAN critic's output "
                       "bias in critic(fake) - critic(real)): it cannot learn and can be removed")
    if frozen:
        return Verdict(name, "info", frozen + f" ({_frozen_share(probe):.0%} of the parameters)", "-",
                       "frozen parameters never change: if they should train, set requires_grad_(True) and add them "
                       "to the optimizer")
    return Verdict(name, "pass", f"all {counted(len(probe.named), 'parameter tensor')} received gradients"
                   if len(probe.named) > 1 else "the one parameter tensor received gradients", "-")


def _written_gradients(name: str, probe: LoopProbe, starved: list[str]) -> Verdict:
    """The verdict of a loop with no backward pass whose ``.grad`` it writes itself (per-example gradients, DP-SGD):
    the parameters it never gives one (``starved``, less those it assigned) are named."""
    left = [n for n in starved if n not in probe.assigned]
    value = f"{len(probe.assigned)} parameter tensors held a gradient at optimizer.step() that no backward " \
        "pass delivered (the loop writes .grad itself: per-example gradients, DP-SGD's noised sum)"
    if not left:
        return Verdict(name, "pass", value, "-")
    return Verdict(name, "warn", f"{value}; never given one: {_group_names(left)}", "every trainable "
                   "parameter gets a gradient", "these parameters never learn: give them a gradient too, or "
                   "freeze them (requires_grad_(False))")


def _cancels(probe: LoopProbe, name: str) -> bool:
    """Whether a bias's gradient cancels: backward reached it with exactly 0 while its layer's weight received a
    gradient. A bias's gradient is the sum of the gradients at its layer's outputs, from which the weight's is
    made too: a weight that learns shows that those gradients are not all 0, so they sum to 0 (the bias shifts
    both terms of a difference equally); every ReLU after the layer dead would leave the weight at 0 too."""
    layer, _, leaf = name.rpartition(".")
    return leaf == "bias" and name in probe.reached and f"{layer}.weight" in probe.received


def _frozen_share(probe: LoopProbe) -> float:
    total = sum(p.numel() for p in probe.named.values())
    return sum(probe.named[n].numel() for n in probe.frozen) / max(total, 1)


#: the train/eval mode verdict's fail for validations run in train mode; the overfitting verdict defers to it
TRAIN_MODE_VALIDATIONS = "validations ran in train mode"


def module_mode(probe: LoopProbe) -> Verdict:
    """Training steps in ``train()`` mode, validation in ``eval()`` mode (only matters with dropout/BatchNorm)."""
    name = "loop: train/eval mode"
    stepped = stepped_validation(name, probe.eval_runs, probe.eval_mode_steps, probe.train_steps)
    if stepped is not None:
        return stepped
    if not mode_matters(probe):
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
        return Verdict(name, "fail", f"{probe.train_mode_validations} of {probe.validations} {TRAIN_MODE_VALIDATIONS}",
                       "model.eval() during validation", "dropout stays on and BatchNorm learns from the "
                       "validation batches: call model.eval() before validating (and model.train() after)")
    if probe.train_steps and probe.frozen_norm_steps >= 0.5 * probe.train_steps and _held_still(probe):
        return _frozen_norms_training(name, probe, _held_still(probe))
    if not probe.train_steps and not probe.validations - probe.unseen_validations:
        return Verdict(name, "skip", "skipped: no training step or validation ran the watched model's forward (the "
                       "loss is computed by another model?)", "-", "")
    return Verdict(name, "pass", f"train mode in {probe.train_steps - probe.eval_mode_steps} of "
                   f"{counted(probe.train_steps, 'step')}, {_validation_modes(probe)}", "-")


def _validation_modes(probe: LoopProbe) -> str:
    """The validations' modes, as far as the watched model ran them: a ``w.validate()`` call with no forward of the
    watched model before it evaluated another model (an EMA copy) or passed a stored loss, in a mode not seen."""
    seen = probe.validations - probe.unseen_validations
    unseen = (f"no forward of the watched model before {probe.unseen_validations} of the {probe.validations} "
              "w.validate() calls (another model evaluated, such as an EMA copy): their mode not seen")
    if probe.mc_dropout_validations:
        seen -= probe.mc_dropout_validations
        sampled = (f"{counted(probe.mc_dropout_validations, 'validation')} sampled each batch several times in "
                   "train mode (Monte Carlo dropout)")
        return "; ".join(([f"eval mode in {counted(seen, 'validation')}"] if seen else []) + [sampled] +
                         ([unseen] if probe.unseen_validations else []))
    if not probe.unseen_validations:
        return f"eval mode in {counted(seen, 'validation')}"
    return unseen if not seen else f"eval mode in {counted(seen, 'validation')}; {unseen}"


def _held_still(probe: LoopProbe) -> list[str]:
    """The BatchNorm layers read as frozen whose weight and bias are still those they had when first read: a
    layer whose weights the loop moves itself, as the moving average of a BYOL or MoCo target network, is not
    frozen, and its train mode is the method's."""
    return sorted(n for n in probe.frozen_norms if bool((probe.frozen_weights[n] == probe.norm_affine(n)).all()))


def _frozen_norms_training(name: str, probe: LoopProbe, names: list[str]) -> Verdict:
    """BatchNorm layers whose weights do not train (a frozen backbone) ran in train mode (``model.train()`` puts
    every module in it): each batch moves their running statistics, and training normalizes by the batch's
    statistics while evaluation uses the drifted running ones. A warning: re-estimating the statistics on new
    data with frozen weights is a method of its own (AdaBN, Li et al. 2016)."""
    shown = ", ".join(names[:4]) + (f" (+{len(names) - 4} more)" if len(names) > 4 else "")
    modules = dict(probe.norms)
    if all(p.requires_grad and id(p) in probe.frozen_at_start for n in names
           for p in (modules[n].weight, modules[n].bias)):
        # unfrozen while watched (meant to train from then on), held by no optimizer: the ownership verdict's cause
        return Verdict(name, "info", f"{len(names)} BatchNorm layer{'s' * (len(names) != 1)} ({shown}) ran in "
                       f"train mode on {probe.frozen_norm_steps} of {probe.train_steps} training steps after their "
                       "weights were unfrozen while watched, but no optimizer holds them", "-",
                       "see 'loop: optimizer holds the parameters': once the optimizer holds them they train, and "
                       "train mode is right for them")
    part = _frozen_part(probe, names)
    fix = (f"call model{part}.eval() (the frozen part) after model.train(), or freeze its BatchNorm statistics" if
           part else "after model.train(), call .eval() on each frozen BatchNorm layer (or freeze their statistics)")
    return Verdict(name, "warn", f"{len(names)} BatchNorm layer{'s' * (len(names) != 1)} with frozen weights "
                   f"({shown}) ran in train mode on {probe.frozen_norm_steps} of {probe.train_steps} training "
                   "steps: their running statistics move with every batch", "frozen BatchNorm layers in eval mode",
                   f"{fix}: the frozen layers then normalize as they were trained to (if re-estimating the "
                   "statistics on the new data is intended, as in AdaBN, keep it)")


def _frozen_part(probe: LoopProbe, names: list[str]) -> str | None:
    """The attribute path (``.backbone``, ``.layer1[0]``) of the module that holds every named layer and no
    parameter that trains, if there is one: ``eval()`` on it freezes the statistics and nothing else."""
    prefix = names[0].split(".")
    for n in names[1:]:
        parts = n.split(".")
        while prefix != parts[: len(prefix)]:
            prefix = prefix[:-1]
    if not prefix:
        return None
    owned = probe.held_now()
    part = probe.model.get_submodule(".".join(prefix))
    if any(p.requires_grad and id(p) in owned for p in part.parameters()):
        return None
    return "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in prefix)


def stepped(probe: LoopProbe, calls: int) -> Verdict | None:
    """``w.step`` calls with no ``optimizer.step()`` at all: the loop never updates (or steps another optimizer);
    many more ``w.step`` calls than optimizer steps: ``w.step`` is called per micro-batch (the observed steps and
    the update/weight ratios then read steps that did not update). Steps that AMP's GradScaler skipped on
    non-finite gradients are neither."""
    name = "loop: optimizer.step() runs"
    if calls >= 3 and probe.opt_steps == 0:
        return Verdict(name, "fail", f"{counted(calls, 'step recorded', 'steps recorded')}, optimizer.step() never ran",
                       "one optimizer.step() per step", "call optimizer.step() after loss.backward() (on the "
                       "optimizer that holds the model's parameters)")
    if calls >= 3 and probe.opt_steps >= 1.5 * calls and probe.game is None:  # a critic steps k times by design
        return Verdict(name, "warn", f"optimizer.step() ran {probe.opt_steps} times in {calls} w.step() calls",
                       "one optimizer.step() per w.step()", "optimizer.step() runs more than once per batch: each "
                       "call applies the same gradients again (a larger, hidden learning rate); call it once per "
                       "batch, then w.step(loss)")
    idle = probe.idle_calls - probe.skipped
    if probe.opt_steps >= 3 and idle >= max(3, calls // 3) and not (probe.stopped_stepping() and added_unheld(probe)):
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
