"""``trainwell watch train.py``: the doctor's :func:`~trainwell.doctor.watch` around a training script left as it
is: no import of trainwell in it, no ``w.step()`` calls.

What a user would pass by hand is read from torch's own hooks and calls while the script runs:

- **the optimizers and the model**: the optimizers that step (torch's global step hooks) till the first of them
  steps again are the loop's; the first counts the steps (a GAN's discriminator when it steps first). The model
  is the module holding all their parameters that the script called outermost (a model ending in a Sigmoid, not
  the network before it; else the smallest holding them all), or the modules holding them side by side (a
  generator and a discriminator never called together) gathered in an ``nn.ModuleDict`` named after the script's
  variables; ``--model NAME`` names the module itself (:mod:`~trainwell.doctor.named_model`). The watch begins at
  the end of that step (of the first step when the process holds one optimizer): of the loop's first step (or two)
  only the loss and labels are read (kept when its optimizer stepped, as those of another loop's optimizer are):
  they start the watch's loss curve (``Watch.began_after``), so that an L-BFGS converging within its first step
  does not read as flat.
- **the loss**: the tensor the step's last ``backward()`` started from (under AMP, the loss ``GradScaler.scale``
  was given, not its scaled copy), handed to ``w.step()`` when the counting optimizer's step ends.
- **the labels**: the target a class-index or regression loss saved in that loss's graph (``F.cross_entropy``'s,
  ``nn.MSELoss``'s ...), read before ``backward()`` frees it, given as ``y=`` when its rows are the batch's.
- **the validations**: the loss calls the watch already reads after forwards without gradients or in eval mode
  (:mod:`~trainwell.doctor.validation_average`); before the next step (and at the script's end) their mean per
  example, or per target that is not ``ignore_index``, is handed to ``w.validate()``. A validation scored without
  one of torch's losses (accuracy only) gives no validation curve; the script's own averaging is not read; the
  training set evaluated beside the validation set, and another model evaluated after the watched one (an EMA
  copy), are left out (:mod:`~trainwell.doctor.script_training_rows`).

A script that trains one model and then another (a teacher, then a student distilled from it; a new optimizer for
a fine-tuning stage) has each loop read on its own: when an optimizer the watch does not hold steps twice with the
counting one idle, the loop has moved on to it, and a new watch begins. A report per loop is printed when the
script ends (also when it raises or exits; its exception is shown first). With ``check`` (``--check``) the first
loop's report begins with the pre-flight of its model as it was at the first step (:mod:`~trainwell.doctor.
script_preflight`).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections import deque
from dataclasses import dataclass, field

import torch
from torch import nn

from trainwell.doctor.loop_forward_hooks import first_tensor
from trainwell.doctor.named_model import named_model
from trainwell.doctor.report import Report
from trainwell.doctor.script_model import alive, watched_model
from trainwell.doctor.script_preflight import ScriptPreflight
from trainwell.doctor.script_training_rows import ModelOutputs, TrainingRows

#: nodes of a loss's graph searched for a saved target (a loss is the last few operations of the graph)
TARGET_NODES = 32
#: the latest steps kept unread (before a watch began, or another loop's optimizer's): their losses and labels
#: start the loss curve of the watch that begins on their optimizer
EARLY = 16


def saved_target(loss: torch.Tensor) -> torch.Tensor | None:
    """The target a torch loss saved in ``loss``'s graph (``NllLossBackward0._saved_target`` and the like), found
    breadth-first among the graph's last :data:`TARGET_NODES` nodes; None for a loss without one (soft targets,
    a loss written out by hand). Read before ``backward()``: it frees the saved tensors."""
    queue, seen = [loss.grad_fn], 0
    while queue and seen < TARGET_NODES:
        node = queue.pop(0)
        if node is None:
            continue
        seen += 1
        try:
            target = getattr(node, "_saved_target", None)
        except RuntimeError:  # freed already (a graph backed through before, retain_graph=False)
            return None
        if isinstance(target, torch.Tensor):
            return target
        queue.extend(f for f, _ in node.next_functions)
    return None


@dataclass
class _Taps:
    """What the script's calls left since the last step: the loss backed from, its target, the batch's rows."""

    loss: torch.Tensor | None = None
    target: torch.Tensor | None = None
    rows: int | None = None
    backing: torch.Tensor | None = None  # the tensor whose Tensor.backward() is running
    in_step: bool = False  # inside an optimizer's step (an LBFGS closure's backward passes)
    kept: bool = False  # the loss is kept already for a step of an optimizer the watch does not hold
    scaled: dict = field(default_factory=dict)  # id(GradScaler.scale's output) -> the loss it was given


class ModelNameError(BaseException):
    """``--model NAME`` names no ``nn.Module`` of the script: the script is stopped (not an ``Exception``, which
    the script's own ``except Exception`` would catch)."""


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
        self._retire = False  # the loop moved to another optimizer: the watch ends at the next backward()
        self.taps = _Taps()
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
        # --check: the pre-flight at the first step; quiet while it runs (its forwards, steps are not the script's)
        self.check, self.preflight, self.quiet = check, None, False

    # -- torch's calls, read ---------------------------------------------------------------------------------
    def _install(self) -> None:
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        self._track_calls()
        if self.check:
            self.preflight = ScriptPreflight(lambda: self._depth == 0, lambda on: setattr(self, "quiet", on))
        self._undo.append(register_optimizer_step_pre_hook(self._before_step).remove)
        self._undo.append(register_optimizer_step_post_hook(self._after_step).remove)
        taps = self.taps

        def backward(original):
            def read(tensor, *args, **kwargs):
                self._backed(tensor)
                # torch.autograd.backward, called by it, and the call again through a TorchFunctionMode's dispatch
                # read nothing more
                taps.backing = tensor
                try:
                    return original(tensor, *args, **kwargs)
                finally:
                    taps.backing = None
            return read

        def autograd_backward(original):
            def read(tensors, *args, **kwargs):
                self._backed(tensors[0] if isinstance(tensors, (list, tuple)) and tensors else tensors)
                return original(tensors, *args, **kwargs)
            return read

        def scale(original):
            def read(scaler, outputs):
                out = original(scaler, outputs)
                if isinstance(outputs, torch.Tensor) and isinstance(out, torch.Tensor):
                    taps.scaled.clear()  # the latest only: a scaled loss is backed through before the next
                    taps.scaled[id(out)] = outputs
                return out
            return read

        self._patch(torch.Tensor, "backward", backward)
        self._patch(torch.autograd, "backward", autograd_backward)
        self._patch(torch.amp.GradScaler, "scale", scale)
        self._patch(nn.Module, "__getstate__", hook_free_copies)

    def _backed(self, tensor) -> None:
        """A ``backward()`` from ``tensor``: the step's loss, unless it is a later pass of the same step (an LBFGS
        closure evaluated again: the step's first loss counts, as ``opt.step(closure)`` returns it). A watch whose
        loop moved to another optimizer ends here, where no hook of torch's is being iterated."""
        taps = self.taps
        if self.quiet or not isinstance(tensor, torch.Tensor) or tensor.numel() != 1 or tensor.grad_fn is None or \
                tensor is taps.backing:
            return
        if self._retire:
            self._end_loop()
        if taps.in_step and taps.loss is not None and not taps.kept:
            return
        loss = taps.scaled.pop(id(tensor), tensor)
        if self.preflight is not None and self.preflight.gathering:
            self.preflight.backed(loss)
        taps.loss, taps.target, taps.kept = loss, saved_target(loss), False

    def _track_calls(self) -> None:
        """Till the loop's optimizers are known: the modules the script calls outermost (the model, not a part of
        it or a container), read by global module hooks."""
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

        self._depth, self._outermost = 0, {}
        self._module_hooks = [register_module_forward_pre_hook(self._entered),
                              register_module_forward_hook(self._left, always_call=True)]

    def _patch(self, owner, name: str, wrap) -> None:
        original = getattr(owner, name)
        setattr(owner, name, wrap(original))
        self._undo.append(lambda: setattr(owner, name, original))

    def _uninstall(self) -> None:
        self._settled()
        for undo in reversed(self._undo):
            undo()
        self._undo = []
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
                    self.taps.rows = len(first)
        self._depth += 1

    def _settled(self) -> None:
        """The loop's optimizers are known: the global module hooks go (they slow down every module call)."""
        for h in self._module_hooks:
            h.remove()
        self._module_hooks = []

    def _left(self, module, args, out) -> None:
        if not self.quiet:
            self._depth = max(self._depth - 1, 0)

    def _before_step(self, optimizer, args, kwargs) -> None:
        if self.quiet:
            return
        self.taps.in_step = True
        if self.preflight is not None and self.preflight.gathering:  # the weights the first forward used
            self.preflight.stepped(optimizer)
        if self.watch is None or optimizer is not self.counting:
            return
        self._hand_over()

    def _hand_over(self) -> None:
        """The validation read since the last step handed to ``w.validate()`` (at the step, or at the first
        training forward after it, before the watch reads that forward: the step's own readings then see its
        training forward only)."""
        value = validation_value(self.watch.probe.validation_losses, self._training_rows, self._outputs)
        if value is not None:
            self.watch.validate(value)
        self._training_rows.stepped()
        self._outputs.stepped()

    def _after_step(self, optimizer, args, kwargs) -> None:
        if self.quiet:
            return
        self.taps.in_step = False
        self._steps[id(optimizer)] = self._steps.get(id(optimizer), 0) + 1
        if self.watch is None:
            # the optimizers that step till the first steps again are the loop's (a GAN's generator after its
            # discriminator); with a single optimizer in the process, that one from its first step
            if any(o is optimizer for o in self._unheld):
                return  # no module holds its parameters (raw tensors optimized): not looked for again
            self._keep(optimizer)
            if any(o is optimizer for o in self._stepped):
                self._start(self._stepped)
            elif not self._stepped and len(alive(torch.optim.Optimizer)) == 1:
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
            return
        self._rival, self._rival_steps = None, 0
        if self._early:
            self._early.clear()  # no other loop's
        taps = self.taps
        if taps.loss is None:
            return  # a step without a backward of the script's (a closure's LBFGS, read as its own)
        y = _labels(taps)
        loss, taps.loss, taps.target = taps.loss, None, None
        if self._module_hooks:
            self._settled()
        self.watch.step(loss, y=y)

    def _keep(self, optimizer, clear: bool = True) -> None:
        """A step no watch reads (before the watch began, or of an optimizer the watch does not hold): its loss
        and labels are kept for the loss curve of a watch that begins on its optimizer; ``clear``: the loss is then
        dropped from the taps, else marked kept (not kept again; an L-BFGS's next step reads its own)."""
        taps = self.taps
        if taps.loss is not None and not taps.kept:
            y = _labels(taps)
            self._early.append((optimizer, taps.loss.detach(), None if y is None else y.detach()))
        if clear:
            taps.loss, taps.target, taps.kept = None, None, False
        else:
            taps.kept = taps.loss is not None

    # -- the model -------------------------------------------------------------------------------------------
    def _start(self, optimizers: list) -> None:
        from trainwell.doctor.watch import Watch

        if self.model_name is None:
            model, self.names = watched_model(optimizers, self._globals, list(self._outermost.values()))
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
        self.unread = self._steps.get(id(self.counting), 0)
        for root in roots:
            self._forward_hooks.append(root.register_forward_pre_hook(self._rows, with_kwargs=True))
        self.watch = Watch(model, optimizers, self.every)
        self._training_rows, self._outputs = TrainingRows(self.watch.probe.split_rows.keys), ModelOutputs()
        for root in roots:
            self._forward_hooks.append(root.register_forward_hook(self._output))
        self.watch.probe.validation_losses.on_call = self._outputs.called  # whether its input is the model's output
        self.watch.__enter__()
        early = [(loss, y) for o, loss, y in self._early if o is self.counting]
        self._early.clear()
        self.curve_from = self.unread + 1 - len(early)
        if early:  # the steps before the watch began start its loss curve
            self.watch.began_after([loss for loss, _ in early], [y for _, y in early])
        self.taps.loss = self.taps.target = None

    def _named(self, optimizers: list) -> tuple[nn.Module | None, list]:
        """The module ``--model`` names and, of the optimizers, those training it (none: another loop's, a
        teacher's before the named student's; the model then None)."""
        try:
            model = named_model(self.model_name, self._globals)
        except ValueError as wrong:
            raise ModelNameError(str(wrong)) from None
        held = {id(p) for p in model.parameters()}
        mine = [o for o in optimizers if any(id(p) in held for g in o.param_groups for p in g["params"])]
        if not mine:
            self.unmatched = True
            return None, optimizers
        self.unmatched = False
        return model, mine

    def _rows(self, module, args, kwargs) -> None:
        first = first_tensor(args, kwargs)  # also a batch given by name (``model(**batch)``)
        training = torch.is_grad_enabled() and module.training
        if first is not None and first.dim() and training:
            self.taps.rows = len(first)
        if training and self.watch is not None and self.watch.probe.validation_losses.pending:
            self._hand_over()  # this hook runs before the watch's own (registered before it)
        self._training_rows.forward(first, training)

    def _output(self, module, args, out) -> None:
        self._outputs.forward(out, torch.is_grad_enabled() and module.training)

    def _end_loop(self, last: bool = False) -> None:
        """The watched loop is over (the script ended, or ``last`` False: it moved on to another optimizer): its
        report, and the hooks go. The validation losses read since its last step are its last validation's at the
        script's end, and another loop's forwards (a teacher's) when it moved on: dropped then."""
        try:
            if last:
                value = validation_value(self.watch.probe.validation_losses, self._training_rows, self._outputs)
                if value is not None:
                    self.watch.validate(value)
        finally:  # its hooks and torch's methods it reads are given back whatever happened
            self.watch.close()
        report = self.watch.report()
        if self.preflight is not None:
            report = self.preflight.folded(report)
        curve = f"; its loss curve from step {self.curve_from}" if self.curve_from <= self.unread else ""
        report.title = f"trainwell watch: {os.path.basename(self._path)}: {', '.join(self.names)} (read from " \
            f"step {self.unread + 1}{curve})"
        self.reports.append(report)
        self.watches.append(self.watch)
        for h in self._forward_hooks:
            h.remove()
        self._forward_hooks = []
        self.watch, self.counting, self._stepped, self._rival, self._rival_steps = None, None, [], None, 0
        self._retire = False
        if not last:
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
            self._run(path)
        except ModelNameError as wrong:
            self.error = self.model_error = str(wrong)
            self.status = 2
        except SystemExit as stop:
            self.exited = True
            if stop.code not in (None, 0):
                self.error = f"the script exited with status {stop.code}"
                self.status = stop.code if isinstance(stop.code, int) else 1  # sys.exit("message") gives 1
        except KeyboardInterrupt:
            self.error, self.status, self.exited = "interrupted", 130, True
        except Exception:  # the script's own error: shown, and the loop so far reported
            self.error, self.status, self.exited = traceback.format_exc(), 1, True
        finally:
            sys.argv, sys.path[:] = saved_argv, saved_path
        try:
            if self.watch is not None:
                self._end_loop(last=True)
            return self.reports
        finally:
            self._uninstall()

    def _run(self, path: str) -> None:
        import types

        module = types.ModuleType("__main__")
        module.__file__ = path
        self._globals = module.__dict__
        saved = sys.modules.get("__main__")
        sys.modules["__main__"] = module  # pickling the script's classes (DataLoader workers) finds them
        try:
            code = compile(open(path, encoding="utf-8").read(), path, "exec")
            exec(code, module.__dict__)
        finally:
            if saved is not None:
                sys.modules["__main__"] = saved


def _labels(taps: _Taps) -> torch.Tensor | None:
    """The step's labels: the target its loss saved, when its rows are the batch's."""
    target = taps.target
    if isinstance(target, torch.Tensor) and target.dim() and taps.rows is not None and len(target) == taps.rows:
        return target
    return None


def hook_free_copies(original):
    """``nn.Module.__getstate__`` leaving the watch's hooks out: the script's ``copy.deepcopy(model)`` and
    ``torch.save(model, path)`` copy its model, not the watch."""
    from trainwell.doctor.hook_free_state import hook_free

    def read(module):
        return hook_free(original(module))
    return read


def validation_value(losses, training_rows: TrainingRows | None = None,
                     outputs: ModelOutputs | None = None) -> float | None:
    """The validation's loss since the last step, from the loss calls the watch read (those of the function
    called first; not those on the training set evaluated beside it, told by ``training_rows``, nor those on
    another model's outputs, told by ``outputs``): the mean per unit
    the loss averages over (a class-index loss's targets not ``ignore_index``, another loss's elements); None when
    there were none."""
    from trainwell.doctor.validation_average import units

    pending = losses.pending
    if not pending:
        return None
    first = pending[0][0]
    keep = training_rows.kept(len(pending)) if training_rows is not None else None
    ours = outputs.kept(pending) if outputs is not None else None
    if ours is not None:
        keep = ours if keep is None else [k and o for k, o in zip(keep, ours, strict=True)]
    total = count = 0.0
    for i, entry in enumerate(pending):  # (name, rows, reduction, value, target, ignored, _, weight, on_training, ...)
        name, rows, reduction, value, target, ignored, _, weight, on_training = entry[:9]
        if name != first or on_training or (keep is not None and not keep[i]):
            continue
        kept = units(target, ignored, weight)  # class indices: the targets not ignored; else every element
        n = float(kept) if kept is not None else float(target.numel()) if isinstance(target, torch.Tensor) and \
            target.numel() else float(rows)
        if n <= 0:
            continue
        total += float(value) * (n if reduction == "mean" else 1.0)
        count += n
    return total / count if count else None


def watch_script(path: str, argv: list[str] | None = None, every: int = 50, model: str | None = None,
                 check: bool = False) -> list[Report]:
    """Run the training script at ``path`` (with ``argv``) unchanged, with the doctor watching its loops; a report
    per training loop (none when it never stepped an optimizer). ``model``: as ``--model``; ``check``: as
    ``--check`` (the pre-flight at the first step, folded into the first loop's report)."""
    return ScriptWatch(every, model, check).run(path, list(argv or []))


__all__ = ["ModelNameError", "ScriptWatch", "saved_target", "validation_value", "watch_script"]
