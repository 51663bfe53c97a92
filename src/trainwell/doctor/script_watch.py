"""``trainwell watch train.py``: the doctor's :func:`~trainwell.doctor.watch` around a training script left as it
is: no import of trainwell in it, no ``w.step()`` calls.

What a user would pass by hand is read from torch's own hooks and calls while the script runs:

- **the optimizers and the model**: the optimizers that step (torch's global step hooks) till the first of them
  steps again are the loop's; the first counts the steps (a GAN's discriminator when it steps first). The model
  is the module holding all their parameters that the script called outermost (a model ending in a Sigmoid, not
  the network before it; else the smallest holding them all), or the modules holding them side by side (a
  generator and a discriminator never called together) gathered in an ``nn.ModuleDict`` named after the script's
  variables; ``--model NAME`` names the module itself (:mod:`~trainwell.doctor.named_model`). When no module holds
  their parameters, or no optimizer ever steps, the model a ``backward()`` reached (:mod:`~trainwell.doctor.
  backed_model`: an optimizer built on a copy of it, ``optimizer.step()`` forgotten). The watch begins at
  the end of that step (of the first step when the process holds one optimizer): of the loop's first step (or two)
  only the loss and labels are read (kept when its optimizer stepped, as those of another loop's optimizer are):
  they start the watch's loss curve (``Watch.began_after``), so that an L-BFGS converging within its first step
  does not read as flat; what the first step showed (its loss against ln C, a static loss scale ``.grad`` still
  held, a finite loss with a NaN gradient) is read from the script's calls
  (:mod:`~trainwell.doctor.script_first_step`): a first update that breaks the run leaves nothing of it later.
- **the loss**: the tensor the step's last ``backward()`` started from (under AMP, the loss ``GradScaler.scale``
  was given, not its scaled copy; of ``(loss * 1024).backward()``, the loss), handed to ``w.step()`` when the
  counting optimizer's step ends, or, when the loop's other optimizers step after it (a head's own optimizer),
  once they have (as a loop calls ``w.step()`` after all its steps: their ``.grad`` is read at their steps).
- **the labels**: the target a class-index or regression loss saved in that loss's graph (``F.cross_entropy``'s,
  ``nn.MSELoss``'s ...; :mod:`~trainwell.doctor.saved_targets`), read before ``backward()`` frees it, given as
  ``y=`` when its rows are the batch's (or its positions, flattened: :mod:`~trainwell.doctor.script_labels`); a
  multi-task loss's per head, ``{head: labels}`` (:mod:`~trainwell.doctor.head_targets`).
- **what the explicit watch finds from the code that calls it**: the schedulers, recorded when created (one local to
  a training function that has returned is read still: :mod:`~trainwell.doctor.script_schedulers`), and the rate
  each optimizer was built with (:mod:`~trainwell.doctor.built_rates`).
- **the validations**: the loss calls the watch already reads after forwards without gradients or in eval mode
  (:mod:`~trainwell.doctor.validation_average`); before the next step, or the next validation taking its first input
  again (:mod:`~trainwell.doctor.validation_passes`: epochs that train nothing), and at the script's end, their mean
  per example, or per target that is not ``ignore_index``, is handed to ``w.validate()``; where the script's own
  variables hold a wrong average of those losses (batch means summed over ``len(val_dataset)``) and no right one,
  that number is handed instead (:mod:`~trainwell.doctor.stated_validation`), to be named. A validation scored
  without one of torch's losses (accuracy only) gives no validation curve; the training set evaluated beside the
  validation set, and another model evaluated after the watched one (an EMA copy), are left out
  (:mod:`~trainwell.doctor.script_training_rows`); the validation set evaluated twice an epoch (for the loss, then
  for the accuracy) reads as one validation an epoch (:mod:`~trainwell.doctor.repeated_validations`).

A script that trains one model and then another (a teacher, then a student distilled from it; a new optimizer for
a fine-tuning stage) has each loop read on its own: when an optimizer the watch does not hold steps twice with the
counting one idle, the loop has moved on to it: the watch ends after the next ``backward()`` and a new one begins.
An optimizer created again of the same kind, settings and parameters (every epoch) takes the old one's place in the
same watch (:mod:`~trainwell.doctor.followed_optimizers`). A report per loop is printed when the
script ends (also when it raises or exits; its exception is shown first). With ``check`` (``--check``) the first
loop's report begins with the pre-flight of its model as it was at the first step (:mod:`~trainwell.doctor.
script_preflight`).
"""

from __future__ import annotations

import os
import sys
from collections import deque

import torch
from torch import nn

from trainwell.doctor.backed_model import UnsteppedLoop, backed_model, zero_grads_read
from trainwell.doctor.built_rates import BuiltRates
from trainwell.doctor.evaluated_copies import evaluating, model_copies
from trainwell.doctor.first_training_batch import FirstTrainingBatch
from trainwell.doctor.followed_optimizers import follow
from trainwell.doctor.func_transforms import outside_transforms
from trainwell.doctor.head_targets import head_targets, output_heads
from trainwell.doctor.hook_free_state import hook_free_copies
from trainwell.doctor.loop_forward_hooks import first_tensor
from trainwell.doctor.named_model import named_and_trained
from trainwell.doctor.rebuilt_optimizers import built_again
from trainwell.doctor.report import Report
from trainwell.doctor.run_patches import forwarding_patch
from trainwell.doctor.saved_targets import saved_target, step_target
from trainwell.doctor.script_backward import Taps, autograd_backward, scaled_losses, tensor_backward
from trainwell.doctor.script_exec import ModelNameError, run_as_main
from trainwell.doctor.script_first_step import FirstStep, unscaled
from trainwell.doctor.script_labels import detached, step_labels
from trainwell.doctor.script_model import one_alive, watched_model
from trainwell.doctor.script_preflight import ScriptPreflight
from trainwell.doctor.script_schedulers import SchedulerRecords
from trainwell.doctor.script_title import read_from
from trainwell.doctor.script_training_rows import ModelOutputs, TrainingRows
from trainwell.doctor.script_validation import handed_value, validation_value
from trainwell.doctor.stated_validation import ScriptFrames, script_frames
from trainwell.doctor.validation_passes import ValidationPasses

#: the latest steps kept unread (before a watch began, or another loop's optimizer's): their losses and labels
#: start the loss curve of the watch that begins on their optimizer
EARLY = 16


class ScriptWatch:
    """Runs a script with torch's step hooks and backward calls read; starts a :class:`~trainwell.doctor.watch.
    Watch` at the end of the first optimizer step and feeds it every step, validation and the report. ``model``:
    the script's name for the model to watch (a global, or a dotted path from one: ``trainer.model``), instead of
    the module found from the optimizers' parameters."""

    def __init__(self, every: int = 50, model: str | None = None, check: bool = False):
        if every < 1:
            raise ValueError(f"--every {every} is not allowed: use an integer >= 1")
        self.every = every
        self.model_name = model
        self.model_error: str | None = None  # --model named no nn.Module of the script
        self.unmatched = False  # --model's module holds none of the parameters of the optimizers that stepped
        self.exited = False  # the script ended by raising or calling sys.exit, not by running to its end
        self.watch = None
        self.names: list[str] = []  # the watched modules, as the script names them
        self.counting = None  # the optimizer whose steps count
        self.unread = 0  # its steps before the watch began
        self.reports: list[Report] = []  # one per training loop the script ran, in order
        self.watches: list = []  # ... and its watch
        self.error: str | None = None
        self.status = 0  # the script's own exit status, as python would give it (1 when it raised)
        self._path = ""
        self._steps: dict[int, int] = {}  # steps per optimizer (by id)
        self._rival = None  # an optimizer the watch does not hold, stepping with the counting one idle
        self._rival_steps = 0
        self._retire = False  # the loop moved to another optimizer: the watch ends after the next backward()
        self.taps = Taps()
        self._globals: dict = {}
        self._undo: list = []
        self._forward_hooks: list = []
        self._stepped: list = []  # the optimizers that stepped before the watch began, in order
        self._unheld: list = []  # optimizers whose parameters no module holds: no loop of a model to watch
        self._outermost: dict[int, nn.Module] = {}  # the modules called outermost before the watch settled
        self._module_hooks: list = []
        self._training_rows = None  # the training rows, to tell the training set evaluated beside the validation
        self._early: deque = deque(maxlen=EARLY)  # (optimizer, loss, labels) of the latest steps not read
        self.curve_from = 0  # the first step of the counting optimizer's in the loss curve
        self._outputs = None  # the model's outputs, to tell another model's loss calls after its validation
        self._val_passes = ValidationPasses()  # a validation begun again with no step since (validation_passes)
        self.first = FirstStep()  # the script's first optimizer step, read before any watch began
        self._pending = None  # (loss, labels) of the counting optimizer's step, till the loop's others stepped
        self._frames = ScriptFrames()  # the script's frames at a validation, for its own validation loss
        self._schedulers = SchedulerRecords()  # the schedulers created, held past their function's return
        self._rates = BuiltRates()  # the rates each optimizer was built with
        self._unstepped = UnsteppedLoop()  # backward() passes before any optimizer step
        self._by_backward = False  # the watched loop steps no optimizer: each backward() is its step
        self._passes: deque = deque(maxlen=EARLY)  # (loss, labels) of the latest of those passes, before it began
        self._dropping = False  # a watch begun on passes with no step is dropped: an optimizer stepped after all
        # --check: the pre-flight at the first step; quiet while it runs (its forwards, steps are not the script's)
        self.check, self.preflight, self.quiet = check, None, False
        self._first_batch = FirstTrainingBatch()  # the first step's input and reached rows, before the watch

    # -- torch's calls, read ---------------------------------------------------------------------------------
    def _install(self) -> None:
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        self._track_calls()
        for reader in (self._schedulers, self._rates):
            reader.start()
            self._undo.append(reader.stop)
        if self.check:
            self.preflight = ScriptPreflight(lambda: self._depth == 0, lambda on: setattr(self, "quiet", on))
        self._undo.append(register_optimizer_step_pre_hook(self._before_step).remove)
        self._undo.append(register_optimizer_step_post_hook(self._after_step).remove)
        self._patch(torch.Tensor, "backward", tensor_backward(self.taps, self._backed, self._backward_done))
        self._patch(torch.autograd, "backward", autograd_backward(self.taps, self._backed, self._backward_done))
        self._patch(torch.amp.GradScaler, "scale", scaled_losses(self.taps))
        self._patch(nn.Module, "__getstate__", hook_free_copies)
        for owner in (torch.optim.Optimizer, nn.Module):  # the passes of a loop that never steps
            self._patch(owner, "zero_grad", zero_grads_read(self._unstepped))

    def _backed(self, tensor) -> None:
        """A ``backward()`` from ``tensor``: the step's loss, unless it is a later pass of the same step (an LBFGS
        closure evaluated again: the step's first loss counts, as ``opt.step(closure)`` returns it)."""
        taps = self.taps
        if self.watch is not None and not self.quiet and isinstance(tensor, torch.Tensor) and tensor.numel() == 1 \
                and tensor.grad_fn is None and tensor.requires_grad and tensor is not taps.backing:
            self.watch._leaf_losses.step(tensor)  # a loss made a leaf of its own: backward() reaches nothing
        if self.quiet or not isinstance(tensor, torch.Tensor) or tensor.numel() != 1 or tensor.grad_fn is None or \
                tensor is taps.backing:
            return
        self._flush()
        if taps.in_step and taps.loss is not None and not taps.kept:
            return
        loss, scale = (taps.scaled.pop(id(tensor)), None) if id(tensor) in taps.scaled else unscaled(tensor)
        if self.preflight is not None and self.preflight.gathering:
            self.preflight.backed(loss)
        taps.loss, taps.target, taps.kept = loss, head_targets(loss, taps.heads) or step_target(loss), False
        self.first.backed(loss, scale)

    def _backward_done(self, outer: bool) -> None:
        """A ``backward()`` ended (``outer``: the script's own call, not torch's inside it); nothing is read of the
        pre-flight's own passes."""
        if self.quiet:
            return
        self.first.backward_done()
        if outer:
            self._after_backward()

    def _after_backward(self) -> None:
        """A ``backward()`` of the script's ended. A watch whose loop moved to another optimizer ends here, where no
        hook of torch's is being iterated and no graph waits for its tensors. While no optimizer has stepped, the
        passes are counted, and a loop that never steps its optimizer (:class:`~trainwell.doctor.backed_model.
        UnsteppedLoop`) is watched from here: each pass is its step."""
        if self._retire:  # after the pass: the report's readings of the model (in place, restored) would change
            self._end_loop()  # tensors this pass's graph saved
        if self._dropping:
            self._drop_loop()
        if self.watch is not None:
            if self._by_backward and self.taps.loss is not None:
                self._read_step()
            return
        if self._steps or self.model_name is not None or self._unstepped.given_up or self.taps.loss is None:
            return
        self._passes.append((self.taps.loss.detach(), _labels(self.taps)))
        found = self._unstepped.backed(list(self._outermost.values()))
        if found is not None:
            self._by_backward = True
            self._start(found[1], found[0])

    def _track_calls(self) -> None:
        """Till the loop's optimizers are known: the modules the script calls outermost (the model, not a part of
        it or a container), read by global module hooks."""
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

        self._depth, self._outermost = 0, {}
        self._module_hooks = [register_module_forward_pre_hook(outside_transforms(self._entered)),
                              register_module_forward_hook(outside_transforms(self._left),
                                                           always_call=True)]

    def _patch(self, owner, name: str, wrap) -> None:
        self._undo.append(forwarding_patch(owner, name, wrap))

    def _uninstall(self) -> None:
        self._settled()
        for undo in reversed(self._undo):
            undo()
        self._undo = []
        self._uninstall_forward_hooks()

    def _uninstall_forward_hooks(self) -> None:
        for h in self._forward_hooks:
            h.remove()
        self._forward_hooks = []
        if self.preflight is not None:
            self.preflight.close()

    def _entered(self, module, args) -> None:
        if self.quiet:
            return
        if self._depth == 0:
            if len(self._outermost) < 64:
                self._outermost.setdefault(id(module), module)
            if torch.is_grad_enabled() and module.training:  # the batch's rows, for the labels of unread steps
                first = next((a for a in args if isinstance(a, torch.Tensor)), None)
                if first is not None and first.dim():
                    self.taps.rows, self.taps.shape = len(first), tuple(first.shape)
        self._depth += 1

    def _settled(self) -> None:
        """The loop's optimizers are known: the global module hooks go (they slow down every module call)."""
        for h in self._module_hooks:
            h.remove()
        self._module_hooks = []

    def _left(self, module, args, out) -> None:
        if not self.quiet:
            self._depth = max(self._depth - 1, 0)
            if not self._depth and torch.is_grad_enabled() and module.training:  # a multi-task model's heads
                self.taps.heads = output_heads(out)
                if self.watch is None:  # the first step's batch, for a validation before any observed step
                    self._first_batch.forwarded(next((a for a in args if isinstance(a, torch.Tensor)), None), out)

    def _before_step(self, optimizer, args, kwargs) -> None:
        if self.quiet:
            return
        self.taps.in_step = True
        self.first.stepping(optimizer)
        if self.preflight is not None and self.preflight.gathering:  # the weights the first forward used
            self.preflight.stepped(optimizer)
        if self.watch is None:
            return
        if optimizer is not self.counting and not any(o is optimizer for o in self._stepped) and \
                built_again(optimizer, self.counting):  # the loop's optimizer created again: the loop goes on
            self._stepped = [optimizer if o is self.counting else o for o in self._stepped]  # with it, from this
            follow(self.watch, self.counting, optimizer)  # step on (its hooks registered now run after this one)
            self.counting = optimizer
        if optimizer is not self.counting:
            return
        self._flush()
        self._hand_over()

    def _hand_over(self) -> None:
        """The validation read since the last step handed to ``w.validate()`` (at the step, or at the first
        training forward after it, before the watch reads that forward: the step's own readings then see its
        training forward only)."""
        self._validate()
        self._training_rows.stepped()
        self._outputs.stepped()

    def _validate(self) -> None:
        """``w.validate()`` given the script's own validation loss where its locals hold a wrong average of the
        validation's batches (:mod:`~trainwell.doctor.stated_validation`), else the mean of those batches."""
        value = handed_value(self.watch.probe.validation_losses, self._training_rows, self._outputs, self._frames)
        if value is not None:
            self.watch.validate(value)
        self._frames.clear()

    def _after_step(self, optimizer, args, kwargs) -> None:
        if self.quiet:
            return
        self.taps.in_step = False
        self._steps[id(optimizer)] = self._steps.get(id(optimizer), 0) + 1
        if self._by_backward:  # an optimizer steps after all (the passes counted were not a loop's): the watch
            self._by_backward, self._dropping = False, True  # goes after the next pass, outside torch's hooks
            return
        if self._dropping:
            return
        if self.watch is None:
            # the optimizers that step till the first steps again are the loop's (a GAN's generator after its
            # discriminator); with a single optimizer in the process, that one from its first step
            if any(o is optimizer for o in self._unheld):
                return  # no module holds its parameters (raw tensors optimized): not looked for again
            self._keep(optimizer)
            if any(o is optimizer for o in self._stepped):
                self._start(self._stepped)
            elif not self._stepped and one_alive(torch.optim.Optimizer):
                self._start([optimizer])
            else:
                self._stepped.append(optimizer)
            return
        if optimizer is not self.counting:
            if not any(o is optimizer for o in self._stepped):  # another loop's optimizer (a student's after
                # its teacher's): twice with the counting one idle, and the loop has moved on to it
                self._keep(optimizer, clear=False)  # (the counting one may step on the same loss next)
                self._rival_steps = self._rival_steps + 1 if self._rival is optimizer else 1
                self._rival = optimizer
                self._retire = self._rival_steps >= 2
            elif optimizer is self._stepped[-1]:
                self._flush()  # the last of the loop's optimizers stepped
            return
        self._rival, self._rival_steps = None, 0
        if self._early:
            self._early.clear()  # no other loop's
        if self.taps.loss is None:
            return  # a step without a backward of the script's (a closure's LBFGS, read as its own)
        self._read_step()

    def _read_step(self) -> None:
        """The step's loss and labels handed to ``w.step()``."""
        taps = self.taps
        y = _labels(taps)
        loss, taps.loss, taps.target = taps.loss, None, None
        if self._module_hooks:
            self._settled()
        self._pending = (loss, y)
        if len(self._stepped) == 1:
            self._flush()

    def _flush(self) -> None:
        """The counting optimizer's step handed to ``w.step()``: once the loop's other optimizers (those stepping
        after it: a second optimizer for the head) stepped too, as a loop calls ``w.step()`` after all its steps
        (their ``.grad`` is read at their steps against the observed step's backward), or else at the next forward
        of the model, the next ``backward()`` or step, or the loop's end."""
        pending, self._pending = self._pending, None
        if pending is not None and self.watch is not None:
            self.watch.step(pending[0], y=pending[1])

    def _keep(self, optimizer, clear: bool = True) -> None:
        """A step no watch reads (before the watch began, or of an optimizer the watch does not hold): its loss
        and labels are kept for the loss curve of a watch that begins on its optimizer; ``clear``: the loss is then
        dropped from the taps, else marked kept (not kept again; an L-BFGS's next step reads its own)."""
        taps = self.taps
        if taps.loss is not None and not taps.kept:
            y = _labels(taps)
            self._early.append((optimizer, taps.loss.detach(), detached(y)))
        if clear:
            taps.loss, taps.target, taps.kept = None, None, False
        else:
            taps.kept = taps.loss is not None

    # -- the model -------------------------------------------------------------------------------------------
    def _start(self, optimizers: list, model: nn.Module | None = None) -> None:
        """The watch begins on ``optimizers`` and the model holding their parameters (``model``: the one a loop that
        never steps its optimizer backed through)."""
        from trainwell.doctor.watch import Watch

        if model is not None:
            self.names, roots = [self._name(model)], [model]
        elif self.model_name is None:
            model, self.names = watched_model(optimizers, self._globals, list(self._outermost.values()))
            if model is None:  # no module holds their tensors: an optimizer built on a copy of the model?
                model = backed_model(list(self._outermost.values()), [tuple(p.shape) for o in optimizers
                                                                      for g in o.param_groups for p in g["params"]])
                self.names = [self._name(model)]
            roots = list(model.values()) if isinstance(model, nn.ModuleDict) and self.names[0] != "model" else [model]
        else:
            model, optimizers = self._named(optimizers)
            self.names, roots = [self.model_name], [model]
        self._stepped = optimizers
        if model is None:  # the heap is not walked again on every step of theirs
            self._unheld.extend(optimizers)
            self._stepped = []
            return
        self.counting = optimizers[0]
        self.unread = self._unstepped.passes if self._by_backward else self._steps.get(id(self.counting), 0)
        for root in roots:
            self._forward_hooks.append(root.register_forward_pre_hook(outside_transforms(self._rows),
                                                                             with_kwargs=True))
        self.watch = Watch(model, optimizers, self.every)
        built = self._rates.of(self.counting)
        if built is not None and len(built) == len(self.watch.probe.start_lrs):  # the rates before the loop set any
            self.watch.probe.start_lrs = built
        self._training_rows, self._outputs = TrainingRows(self.watch.probe.split_rows.keys), ModelOutputs()
        for root in roots:
            self._forward_hooks.append(root.register_forward_hook(outside_transforms(self._output)))
        self.watch.probe.validation_losses.on_call = self._called
        self._first_batch.hand_to(self.watch.probe)
        self.watch.__enter__()
        held = [self._globals, *(f.f_locals for f in script_frames(sys._getframe(1)))] if len(roots) == 1 else []
        when = evaluating(self.watch.probe)
        self.watch.held_copies = model_copies(roots[0], held) if held else []
        for copy in self.watch.held_copies:  # an EMA validated in the model's place
            self._forward_hooks += self.watch.probe.read_as_model(copy, when)
        early = list(self._passes) if self._by_backward else \
            [(loss, y) for o, loss, y in self._early if o is self.counting]
        self._early.clear()
        self.curve_from = self.unread + 1 - len(early)
        if early:  # the steps before the watch began start its loss curve (from the first: its reading too)
            first = self.first if self.curve_from == 1 and self.first.optimizer is self.counting and \
                self.first.value is not None and not self.reports else None
            self.watch.began_after([loss for loss, _ in early], [y for _, y in early], first)
        self.taps.loss = self.taps.target = None

    @property
    def unheld(self) -> int:
        """How many optimizers stepped on tensors that no module of the script holds (torch.func's
        ``stack_module_state``, a list of raw tensors): no model's loop to read."""
        return len(self._unheld)

    def _name(self, model: nn.Module | None) -> str:
        return next((k for k, v in self._globals.items() if v is model and not k.startswith("_")), "model")

    def _named(self, optimizers: list) -> tuple[nn.Module | None, list]:
        """The module ``--model`` names and, of the optimizers, those training it (none: another loop's, a
        teacher's before the named student's; the model then None)."""
        try:
            model, mine = named_and_trained(self.model_name, self._globals, optimizers)
        except ValueError as wrong:
            raise ModelNameError(str(wrong)) from None
        self.unmatched = model is None
        return model, mine

    def _rows(self, module, args, kwargs) -> None:
        self._flush()
        first = first_tensor(args, kwargs)  # also a batch given by name (``model(**batch)``)
        training = torch.is_grad_enabled() and module.training
        if first is not None and first.dim() and training:
            self.taps.rows, self.taps.shape = len(first), tuple(first.shape)
        pending = len(self.watch.probe.validation_losses.pending) if self.watch is not None else 0
        again = self._val_passes.read(first, training, pending, module.training)  # a validation taking its first
        if (training or again) and pending:  # input again with no step since: the one before is handed over
            self._hand_over()  # this hook runs before the watch's own (registered before it)
        self._training_rows.forward(first, training)

    def _called(self, record: tuple, given) -> None:
        """A validation loss call kept: whether its input is the model's output, and the script's frames."""
        self._outputs.called(record, given)
        self._frames.called(len(self.watch.probe.validation_losses.pending) == 1)

    def _output(self, module, args, out) -> None:
        self._outputs.forward(out, torch.is_grad_enabled() and module.training)
        if torch.is_grad_enabled() and module.training:
            self.taps.heads = output_heads(out)

    def _end_loop(self, last: bool = False) -> None:
        """The watched loop is over (the script ended, or ``last`` False: it moved on to another optimizer): its
        report, and the hooks go. The validation losses read since its last step are its last validation's at the
        script's end, and another loop's forwards (a teacher's) when it moved on: dropped then."""
        self._flush()
        if not last and self._rival is not None:
            self.watch.probe.successors = [self._rival]
        self.watch.held_plateaus = self._schedulers.plateaus([*self._stepped, *self.watch.probe.optimizers])
        self.watch.frames_read = False  # the frames above are this run's and its caller's, none of the script's
        try:
            if last:
                self._validate()
        finally:  # its hooks and torch's methods it reads are given back whatever happened
            self.watch.close()
        report = self.watch.report()
        self._schedulers.release([*self._stepped, *self.watch.probe.optimizers])
        if self.preflight is not None:
            report = self.preflight.folded(report)
        report.title = f"trainwell watch: {os.path.basename(self._path)}: {', '.join(self.names)} " \
            f"({read_from(self.unread, self.curve_from, len(self.names), len(self._stepped), self._by_backward)})"
        self.reports.append(report)
        self.watches.append(self.watch)
        self._uninstall_forward_hooks()
        self._frames.clear()
        self.watch, self.counting, self._stepped, self._rival, self._rival_steps = None, None, [], None, 0
        self._retire = self._by_backward = False
        if not last:
            self._track_calls()

    def _drop_loop(self) -> None:
        """The watch begun on ``backward()`` passes with no optimizer step ends unreported: an optimizer steps."""
        self.watch.close()
        self._uninstall_forward_hooks()
        self.watch, self.counting, self._stepped, self._by_backward, self._dropping = None, None, [], False, False
        self._track_calls()

    # -- the run ---------------------------------------------------------------------------------------------
    def run(self, path: str, argv: list[str]) -> list[Report]:
        """Run the script at ``path`` with ``argv`` as its arguments; the report of each training loop it ran (a
        teacher's, then its student's), none when it never stepped an optimizer. The script's exception, or its
        ``sys.exit``, ends the run; it is kept in ``error``, not raised."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"trainwell watch: no script at {path!r}")
        saved_argv, saved_path = sys.argv[:], sys.path[:]
        sys.argv = [path, *argv]
        sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
        self._path = path
        self._install()
        try:
            self.error, self.status, self.exited, self.model_error = run_as_main(path, self._read_globals)
        finally:
            sys.argv, sys.path[:] = saved_argv, saved_path
        try:
            if self._dropping:
                self._drop_loop()
            if self.watch is not None:
                self._end_loop(last=True)
            return self.reports
        finally:
            self._uninstall()

    def _read_globals(self, names: dict) -> None:
        self._globals = names


def _labels(taps: Taps) -> torch.Tensor | dict | None:
    """The step's labels: the target its loss saved, when its rows are the batch's (or its positions, flattened)."""
    return step_labels(taps.target, taps.rows, taps.shape)


def watch_script(path: str, argv: list[str] | None = None, every: int = 50, model: str | None = None,
                 check: bool = False) -> list[Report]:
    """Run the training script at ``path`` (with ``argv``) unchanged, with the doctor watching its loops; a report
    per training loop (none when it never stepped an optimizer). ``model``: as ``--model``; ``check``: as
    ``--check`` (the pre-flight at the first step, folded into the first loop's report)."""
    return ScriptWatch(every, model, check).run(path, list(argv or []))


__all__ = ["ModelNameError", "ScriptWatch", "saved_target", "validation_value", "watch_script"]
