"""``watch``: the doctor's monitors, the loop's checks and the post-flight diagnosis around a training loop you
wrote yourself.

What the loop does is read from hooks (:mod:`trainwell.doctor.loop_probe`): gradients at ``optimizer.step()``
against what ``backward()`` delivered, which tensors the optimizer holds and the rate it applies, the module's
mode, the output's gradient (the loss's form and scale), the inputs and, with ``w.step(loss, y=y)``, the labels.
The ``loop:`` verdicts (:mod:`trainwell.doctor.loop_verdicts`) name the cause, and the learning-rate and
bias/variance verdicts defer to it.

Every ``every`` steps one whole step is observed (forward hooks on the activation layers, back-propagated
gradients, the update/weight ratio ||dw|| / ||w|| of that step; cs231n, Glorot & Bengio 2010); the other steps
cost one Python call and a detached loss. ``report()`` adds the loss-curve learning-rate diagnosis, overfitting
(if validation losses were given) and bias/variance (if errors were given; "unknown" human level unless you give
one). Hooks are removed when the ``with`` block ends, also on an exception; NaN/Inf activations and gradients are
verdicts, never exceptions.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from trainwell import doctor
    >>> model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    >>> with doctor.watch(model, opt, every=5) as w:
    ...     for _ in range(20):
    ...         loss = nn.functional.cross_entropy(model(x), y)
    ...         opt.zero_grad()
    ...         loss.backward()
    ...         opt.step()
    ...         w.step(loss)
    >>> len(w.monitor.records)  # steps 5, 10, 15 and 20 observed whole
    4
"""

from __future__ import annotations

import math
import sys
import warnings

import torch
from torch import nn

from trainwell.doctor import checkpointing, diagnosis, game_players
from trainwell.doctor import loop_loss as ll
from trainwell.doctor import watch_verdicts as wv
from trainwell.doctor.advice_agreement import agree
from trainwell.doctor.bce_targets import defer_to_binary_targets, targets_outside
from trainwell.doctor.binary_floor import floor_is_a_bound, soft_binary_floors
from trainwell.doctor.clip_order import ClipCalls
from trainwell.doctor.collapsed_head import collapsed_head
from trainwell.doctor.compiled_wrappers import CompileCalls, compiled_wrapper
from trainwell.doctor.contrastive_floor import ContrastiveReader
from trainwell.doctor.depth_collapse import collapse
from trainwell.doctor.echoed_targets import echoed_input
from trainwell.doctor.empty_epochs import defer_to_empty_epochs
from trainwell.doctor.epoch_order import SamplerCount
from trainwell.doctor.fresh_layers import FreshLayers
from trainwell.doctor.game_reading import read_game
from trainwell.doctor.kept_losses import KeptLosses
from trainwell.doctor.label_column import LabelColumns
from trainwell.doctor.lambda_factors import LambdaSchedules
from trainwell.doctor.lazy_parameters import has_lazy_parameters
from trainwell.doctor.leaf_loss import LeafLosses
from trainwell.doctor.loop_deferral import defer, defer_diverged_validation, mismeasured_validation
from trainwell.doctor.loop_forward_hooks import first_tensor
from trainwell.doctor.loop_loss_inputs import LossInputReads
from trainwell.doctor.loop_probe import LoopProbe
from trainwell.doctor.loss_inputs import widening_warning
from trainwell.doctor.memorizing_curve import mean_cross_entropy_classes, memorizing
from trainwell.doctor.mixup_pairs import MixupPairs
from trainwell.doctor.momentum_curve import heavy_ball, momentum_started, reread_after_buildup
from trainwell.doctor.monitors import Monitor
from trainwell.doctor.normalized_steps import tuned_clipping
from trainwell.doctor.orphan_schedulers import SchedulerSteps
from trainwell.doctor.paired_labels import label_pairing
from trainwell.doctor.plateau_metric import PlateauMetrics
from trainwell.doctor.plateau_steps import plateau_at_healthy_steps
from trainwell.doctor.policy_terms import PolicyTerms
from trainwell.doctor.positive_init import positive_weights
from trainwell.doctor.probability_logs import unguarded_log
from trainwell.doctor.rate_numbers import with_rate
from trainwell.doctor.rebuilt_optimizers import OptimizerBuilds
from trainwell.doctor.rebuilt_schedulers import SchedulerBuilds
from trainwell.doctor.registration import graph_leaves, unregistered
from trainwell.doctor.reinitialized_weights import InitCalls
from trainwell.doctor.repeated_validations import once_each
from trainwell.doctor.report import Report
from trainwell.doctor.reset_curve import reread_after_reset
from trainwell.doctor.restored_weights import StateRestores, weight_sums
from trainwell.doctor.sampler_weights import LoaderSamplers
from trainwell.doctor.scale_invariant_rate import StartNorms, grown_norms
from trainwell.doctor.sequence_targets import echoed_labels, label_parts
from trainwell.doctor.shared_steps import SharedSteps
from trainwell.doctor.shifted_classes import explained_by_shift
from trainwell.doctor.stale_copy_statistics import copies_held
from trainwell.doctor.step_readings import forward_tensors
from trainwell.doctor.summed_loss import summed_batch_loss
from trainwell.doctor.supcon_floor import supcon_floors
from trainwell.doctor.trained_pads import TrainedPads
from trainwell.doctor.trained_start import predicts_labels
from trainwell.doctor.trained_symmetry import constant_weights
from trainwell.doctor.unrelated_validation import TrainingHits
from trainwell.doctor.unstepped_schedulers import plateaus_held
from trainwell.doctor.validation_classes import TrainingClasses
from trainwell.doctor.value_readings import read_with_targets, read_with_value
from trainwell.doctor.warmup_curve import reread_after_warmup
from trainwell.doctor.weighted_curve import reread_after_weights
from trainwell.doctor.wide_init import wide_weights
from trainwell.doctor.wrapped_optimizers import stepping
from trainwell.doctor.zero_sqrt import nan_gradient_through_root
from trainwell.train.callbacks import State
from trainwell.train.stopping import OverfitDetector
from trainwell.train.uncompiled import suspend_compiled


class Watch:
    """Monitors for a user's own loop. Use through :func:`watch`; call :meth:`step` once per optimizer step,
    after ``optimizer.step()`` and before the next ``zero_grad()`` (the observed step's gradients are read then).
    ``optimizer`` may be a list of optimizers stepped together (the first one's steps count); a wrapper that
    updates through its ``base_optimizer`` (SAM's ``first_step``/``second_step``) is read through that one.

    Attributes:
        monitor: the underlying :class:`~trainwell.doctor.monitors.Monitor` (``records``, ``warnings``).
        losses: the training loss of every step (floats).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | list[torch.optim.Optimizer],
                 every: int = 50, *,
                 batch_size: int | None = None, **monitor_options):
        if not isinstance(model, nn.Module):
            raise TypeError(f"doctor.watch: model is a {type(model).__name__}, not a torch.nn.Module")
        optimizers = list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer]
        wrong = next((o for o in optimizers if not hasattr(o, "param_groups")), None) if optimizers else optimizer
        if wrong is not None:
            raise TypeError(f"doctor.watch: optimizer is a {type(wrong).__name__}, not a torch optimizer (or a list "
                            "of them)")
        given, optimizers = optimizers, [stepping(o) for o in optimizers]  # SAM's base_optimizer makes its update
        compiled = hasattr(model, "_orig_mod")
        outer, model = model, getattr(model, "_orig_mod", model)  # torch.compile's wrapper: hooks on the original
        wrapper = None if compiled else compiled_wrapper(model)  # the loop may call torch.compile(model)'s wrapper
        if wrapper is not None:
            compiled, outer = True, wrapper
        self.monitor = Monitor(every=every, **monitor_options)
        self.probe = LoopProbe(model, optimizers, every, compiled=compiled)
        self._fresh_momentum = not momentum_started(optimizers)  # the curve will show the momentum's build-up
        self._outer = outer  # what runs uncompiled on the steps the watch reads (_compile_next_step)
        self._recompile = None  # compiles it back
        self._compiled_parts: list[nn.Module] = []  # the wrappers of submodules compiled while watched
        optimizer = optimizers[0]
        self._ys: list[torch.Tensor] = []
        self._classes = TrainingClasses()  # the classes of every step's labels
        self._pads = TrainedPads()  # the loss's gradient at the padded positions of observed steps
        self._y_contexts: list = []  # per kept y: the plain values its forward took (a multi-task model's task)
        self._parts: dict[str, list[torch.Tensor]] = {}  # a tuple or dict y=: its floating-point targets by name
        self._pairings: list[float | None] = []  # per observed step: the share of outputs given their own label
        self._bce_targets: list = []  # per observed step: BCE-with-logits targets outside [0, 1] (min, max)
        self._against: list[bool | None] = []  # per observed step: cross-entropy against its multi-hot targets?
        self._loss_inputs = LossInputReads()  # what the loop hands its loss (ctc, pair, Dice inputs)
        self._mixups = MixupPairs(model)  # the permutations mixup mixes the inputs and the labels with
        self._echoes: list[int | None] = []  # per observed step: which forward input its targets equal
        self._echo_sample: tuple | None = None  # (args, kwargs, index, tensors) of the first forward they equal
        self._label_columns = LabelColumns()  # an input column equal to the labels
        self._calls = 0
        self._broadcast: str | None = None
        self._reentrant_cut = False  # torch warned: a reentrant checkpointed segment had no input requiring grad
        self._warnings = None
        self.batch_size = batch_size
        self._state = State(model=model, optimizer=optimizer)
        self._losses: list = []  # detached tensors or floats; converted in one go when read
        self._before: list[float] = []  # the losses of the steps taken before the watch began (began_after)
        self._before_ys: list = []  # ... and their labels (None where not read)
        self.first_step = None  # the loop's first step, read before the watch began (script_first_step.FirstStep)
        self._val: list[tuple[int, float]] = []
        self._shuffles = SamplerCount()  # epochs of a DataLoader(shuffle=True) begun while watched
        # the weighted samplers of the DataLoaders iterated while watched, and the steps their epochs began at
        self._samplers = LoaderSamplers(lambda: len(self.probe.lrs))
        self._lambdas = LambdaSchedules()  # the LambdaLR schedulers stepped while watched
        self._scheduler_steps = SchedulerSteps()  # every scheduler stepped while watched (one on another optimizer)
        self._plateaus = PlateauMetrics()  # the values the ReduceLROnPlateau schedulers were stepped on
        self._builds = SchedulerBuilds(self.probe.optimizers, lambda: len(self.probe.lrs))  # schedulers created
        self._restores = StateRestores(model, outer)  # the state dicts loaded into the model while watched
        self._inits = InitCalls(model, lambda: len(self._losses))  # torch.nn.init calls once training began
        # optimizers created while watched over the model's parameters (one built again every step or epoch)
        self._given = given  # the optimizers as given (their schedulers hold them, not SAM's base optimizer)
        self._optimizer_builds = OptimizerBuilds(model.parameters(), lambda: (self._calls, len(self._val), len(
            self._samplers.starts)), optimizers)
        self._clips = ClipCalls(model, optimizers)  # where the loop clips its gradients
        self._shared = SharedSteps(optimizers, dict(model.named_parameters()))  # a tensor two optimizers step
        self._kept = KeptLosses()  # weak references to the loss tensors given to step()
        self._leaf_losses = LeafLosses()  # step losses that are leaves (requires_grad set on the loss itself)
        self._fresh = FreshLayers()  # parameters outside the model, new at every step (a layer built in forward)
        self._hits = TrainingHits()  # the training batches' labels right before the first validation
        self._log_form: str | None = None  # an unguarded log of a probability in the first loss's graph
        self._zero_root: str | None = None  # a root at 0 that made the first finite loss's gradient NaN
        self._contrastive = ContrastiveReader()  # a contrastive loss's temperature, read on the first steps
        self._policy = PolicyTerms()  # a policy-gradient term in the first steps' loss graphs
        self._first_forward: tuple | None = None  # the first observed step's training forward (args, kwargs)
        self._first_targets = None  # the y= given on that step
        self._norms = StartNorms(model)  # the weights' norms before the first step (scale-invariant ones grow)
        self._positive = positive_weights(model.named_parameters())  # weights initialized all positive
        self._wide = wide_weights(model.named_parameters())  # weights drawn far too wide for their fan-in
        self._constant = constant_weights(model.named_parameters())  # weights initialized to one value
        self._compiles = CompileCalls(model, self._compiled_while_watched)  # torch.compile(model) in the block
        self._val_losses = self.probe.validation_losses  # the loss calls of the validations
        self._val_losses.training = self._loss_inputs.training_call  # held against the training loss's call
        # the readers of torch's own methods (DataLoaders, schedulers, optimizers, state dicts, clipping,
        # compiling) the loop calls: each replaces its method while the block runs
        self._call_readers = (self._shuffles, self._samplers, self._lambdas, self._plateaus, self._builds,
                              self._restores, self._optimizer_builds, self._clips, self._compiles, self._inits,
                              self._scheduler_steps, self._shared)
        # the ReduceLROnPlateau schedulers the code holds when it asks for the report
        self._plateaus_now: list = []
        self.held_plateaus: list = []  # those the caller knows of besides (trainwell watch's, recorded when created)
        # the copies of the model (an EMA's) the code holds when it asks for the report, and trainwell watch's
        self._copies_now: list = []
        self.held_copies: list = []
        # the weights the watch began with (none for a lazy model: its parameters have no values yet)
        self._start_sums = None if has_lazy_parameters(model) else weight_sums(list(model.parameters()))
        # the caller's frames read for those it holds; off for trainwell watch (its report is asked for by its own
        # code, which holds none): a function frame whose locals are read keeps a snapshot of them (Python < 3.13)
        self.frames_read = True
        self._open = False

    # -- the loop ------------------------------------------------------------------------------------------
    def __enter__(self) -> Watch:
        self.monitor.on_fit_start(self._state)
        self.probe.attach()
        self._catch_torch_warnings()
        for reader in self._call_readers:
            reader.start()
        self._open = True
        self._start_readers()
        self._compile_next_step()
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False  # an exception in the loop propagates; the hooks are gone either way

    def close(self) -> None:
        """Remove every hook from the model (idempotent)."""
        self._val_losses.paused()  # its mode, entered after a validation forward, is above the readers'
        self._finish_readers()  # their modes are above the monitor's on the stack: popped first
        self.monitor._remove()
        self.monitor._armed = False
        self.probe.detach()
        self._release_compiled()
        for reader in self._call_readers:
            reader.stop()
        if self._warnings is not None:
            self._warnings.__exit__(None, None, None)
            self._warnings = None
        self._open = False

    def _catch_torch_warnings(self) -> None:
        """Record torch's "target size different to the input size" warning (an elementwise loss broadcasting
        (B, 1) against (B,)) and its "None of the inputs have requires_grad=True" warning in a training forward
        of the watched model (a reentrant checkpointed segment whose parameters get no gradient; a validation
        under ``torch.no_grad`` gives it too, by design) while the block runs, even if shown before; the user still
        sees each once."""
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.filterwarnings("always", message=r"Using a target size .* different to the input size")
        warnings.filterwarnings("always", message=checkpointing.NO_GRAD_INPUTS)
        shown, message_shown = warnings.showwarning, []  # the checkpoint warning: shown once

        def show(message, category, filename, lineno, file=None, line=None):
            if "different to the input size" in str(message) and widening_warning(str(message)):
                first = self._broadcast is None
                self._broadcast = str(message)
                if not first:
                    return
            if str(message).startswith(checkpointing.NO_GRAD_INPUTS):
                # inside the watched model's forward with gradients (a Function's forward runs without them)
                self._reentrant_cut = self._reentrant_cut or self.probe.forward_with_grad()
                if message_shown:
                    return
                message_shown.append(True)
            shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show

    def step(self, loss: torch.Tensor | float, y: torch.Tensor | None = None) -> None:
        """Record one optimizer step's training loss (a tensor or a float); observe a whole step every ``every``.

        ``y``: the step's targets (optional): their range, whether class 0 appears, and the label mix per batch
        against the whole run (unshuffled or sorted data) are then checked. A tuple, list or dict of targets (a
        multi-task loss's ``(labels, boxes)``) has each floating-point part read for its scale."""
        if not self._open:
            raise RuntimeError("doctor.watch: step() outside the with-block: use `with doctor.watch(model, opt) "
                               "as w:` around the loop")
        self._calls += 1
        self._val_losses.stepped()
        self.probe.random_states.stepped()  # before the readings below run anything
        self._kept.record(loss)
        self._leaf_losses.step(loss)
        self._fresh.read(loss, self.probe.model, self.probe.optimizers)
        self.probe.kept_outputs.stepped(self._kept.graph_alive)
        self._finish_readers()
        self._loss_inputs.training_call.given(loss)  # the step's loss against its class-index call's value
        self._mixups.read(y)
        self.probe.row_labels.step(y)
        scored = self.probe.scored  # an observed step's (outputs, gradient): the readings below clear it
        self._hits.read(scored, y, len(self._val))
        idle = self.probe.step_recorded()
        if self._calls == 1 and isinstance(loss, torch.Tensor) and loss.grad_fn is not None:
            leaves = graph_leaves(loss)
            # an input made to require a gradient (a penalty on d loss / d x, WGAN-GP's) is the batch, not a tensor
            # the model should register
            inputs = {id(t) for t in self.probe.input_leaves}
            batch = first_tensor(*self.probe.mode_sample) if self.probe.mode_sample is not None else None
            rows = len(y) if isinstance(y, torch.Tensor) and y.dim() else len(batch) if batch is not None and \
                batch.dim() else None
            self.probe.unregistered = unregistered(self.probe.model, [t for t in leaves if id(t) not in inputs], rows)
            self.probe.input_leaves = []
            game_players.loss_read(self.probe, leaves)
            self._loss_inputs.first_loss(loss)
            self._log_form = unguarded_log(loss)
            self._zero_root = self._zero_root or nan_gradient_through_root(loss, self.probe.model)
            read_game(self.probe, leaves)
        self.probe.turns = None
        self._loss_inputs.observed(self.probe, scored, loss, y)
        if scored is not None:  # an observed step: BCE-with-logits targets outside [0, 1]
            self._bce_targets.append(targets_outside(scored, y))
        if isinstance(y, torch.Tensor) and self.probe.scored is not None:  # after an observed step only
            self._pairings.append(label_pairing(*self.probe.scored, y))
            self._against.append(read_with_targets(self.probe, y))
        if self._first_forward is None:
            self._first_forward, self._first_targets = self.probe.step_forward, y
        forward = self.probe.step_forward  # the observed step's forward (read, then cleared, by _read_echo)
        self._read_echo(y, scored)
        self._pads.read(self.probe.model, forward, scored, y)
        if forward is not None:
            self._label_columns.read(forward_tensors(*forward), y)
        self._classes.add(y)
        if isinstance(y, torch.Tensor) and len(self._ys) < 512:  # copied to the CPU at report time: no sync here
            self._ys.append(y.detach())
            self._y_contexts.append(self.probe.row_labels.context)
        elif isinstance(y, tuple | list | dict):  # several targets: each floating-point one is read for its scale
            for name, t in (y.items() if isinstance(y, dict) else enumerate(y)):
                kept = self._parts.setdefault(f"[{name!r}]", [])
                # a dict's class labels too: each task's are read against its head (the output field of its key)
                if isinstance(t, torch.Tensor) and t.dim() and len(kept) < 512 and (t.is_floating_point() or isinstance(
                        y, dict) and not t.is_complex() and t.dtype != torch.bool):
                    kept.append(t.detach())
        # after an observed step only: its outputs against the value
        read_with_value(self.probe, loss, y, forward_tensors(*forward) if forward is not None else [])
        value = loss.detach() if isinstance(loss, torch.Tensor) else float(loss)
        self._losses.append(value)
        self._state.batch_loss = value
        self._state.step += 1  # steps done, as the Trainer counts them
        if not (idle and self.monitor.skipped_step(self._state)):  # a step AMP's GradScaler skipped: observe the next
            self.monitor.on_batch_end(self._state)
        self._start_readers()
        self._compile_next_step()

    def began_after(self, losses: list, ys: list | None = None, first=None) -> None:
        """The loop took steps before the watch began (``trainwell watch`` knows the model only once its first
        step ended): their ``losses`` (and labels ``ys``, None where not read) start the loss curve that the
        learning-rate reading reads; ``first``: when they begin at the loop's first step, what that step showed
        (:class:`~trainwell.doctor.script_first_step.FirstStep`: the first loss, a static loss scale, a root at 0)."""
        self._before = [float(v) for v in losses]
        self._before_ys = list(ys) if ys is not None else [None] * len(self._before)
        self.first_step = first
        self._zero_root = first.root if first is not None else None

    def _start_readers(self) -> None:
        """Enter the modes that read the torch calls of the next step's loss."""
        self._contrastive.start()
        self._policy.start()
        self._loss_inputs.start()
        self._mixups.start()

    def _compile_next_step(self) -> None:
        """A compiled model (``torch.compile(model)``'s wrapper, given or called by the loop, or
        ``model.compile()``) runs the next step uncompiled when the watch reads it: an observed step (hooks that a
        compiled forward would not call, or would break its graph on) or one whose loss the readers' modes see.
        The other steps run compiled; the hooks on every forward are then left out of the graph."""
        self._release_compiled()
        p = self.probe
        if p.compiled and (p._armed or self.monitor._armed or self._contrastive.active or self._loss_inputs.active or
                            self._mixups.active or self._policy.active):
            inside = {id(m) for m in self._outer.modules()}
            parts = [w for w in self._compiled_parts if id(w) not in inside]  # not yet put in the model
            restores = [suspend_compiled(m) for m in [self._outer, *parts]]

            def recompile() -> None:
                for restore in reversed(restores):
                    restore()
            self._recompile = recompile

    def _compiled_while_watched(self, module: nn.Module) -> None:
        """The loop compiled the model inside the watch: ``module`` (``torch.compile(model)``'s wrapper, or the
        model compiled in place) is what runs uncompiled on the steps the watch reads, from the current one on. A
        submodule's wrapper (``model.encoder = torch.compile(model.encoder)``) runs uncompiled on them too, also
        before the loop puts it in the model; a submodule compiled in place is in the model already."""
        self._release_compiled()
        if getattr(module, "_orig_mod", None) is self.probe.model:
            self._outer = module
            self._restores.models += (module,)
        elif module is not self.probe.model and hasattr(module, "_orig_mod"):
            self._compiled_parts.append(module)
        self.probe.runs_compiled()
        self._compile_next_step()

    def _release_compiled(self) -> None:
        if self._recompile is not None:
            self._recompile()
            self._recompile = None

    def _finish_readers(self) -> None:
        """Leave them, the last entered first."""
        self._mixups.finish()
        self._loss_inputs.finish()
        self._policy.finish()
        self._contrastive.finish()

    def _read_echo(self, y, scored: tuple | None) -> None:
        """On an observed step (8 at most): whether its targets equal one of the tensors its training forward took
        (:mod:`~trainwell.doctor.echoed_targets`; token ids, also as a tuple or dict's integer part, unless the
        loss shifts them itself: :mod:`~trainwell.doctor.sequence_targets`)."""
        forward, self.probe.step_forward = self.probe.step_forward, None
        if forward is None or not label_parts(y) or len(self._echoes) >= 8:
            return
        tensors = forward_tensors(*forward)
        floating = isinstance(y, torch.Tensor) and y.is_floating_point()
        index = echoed_input(tensors, y.detach()) if floating else echoed_labels(tensors, y, scored)
        self._echoes.append(index)
        if index is not None and self._echo_sample is None:
            self._echo_sample = (*forward, index, tensors)

    def validate(self, val_loss: float, train_loss: float | None = None) -> None:
        """Record a validation loss (e.g. once per epoch); the training loss at that point defaults to the mean of
        the steps since the previous call."""
        self._val.append((len(self._losses), float(val_loss), None if train_loss is None else float(train_loss)))
        self._val_losses.validated(float(val_loss))
        self._restores.validated(float(val_loss))
        self._classes.fold()
        self.probe.validation_seen()

    @property
    def losses(self) -> list[float]:
        values = [v for v in self._losses if isinstance(v, torch.Tensor)]
        if values:  # one device sync for all of them
            floats = iter(torch.stack([v.float().reshape(()) for v in values]).cpu().tolist())
            self._losses = [next(floats) if isinstance(v, torch.Tensor) else v for v in self._losses]
        return list(self._losses)

    # -- the verdicts --------------------------------------------------------------------------------------
    def _history(self, val_losses: list[float] | None, once: bool = True) -> list[dict]:
        """The training and validation loss at each validation; ``once``: a validation set evaluated k times per
        epoch read once (:mod:`~trainwell.doctor.repeated_validations`), else one entry per ``validate()``."""
        losses = self.losses
        if val_losses is not None:  # evenly spaced evaluations over the recorded steps
            n = len(val_losses)
            ends = [round((i + 1) * len(losses) / n) for i in range(n)]
            marks = [(e, float(v), None) for e, v in zip(ends, val_losses, strict=True)]
        else:
            marks = once_each(self._val) if once else self._val
        history, start = [], 0
        for end, val, train in marks:
            chunk = losses[start:end] or losses[max(0, end - 1) : end]
            tr = train if train is not None else (sum(chunk) / len(chunk) if chunk else math.nan)
            history.append({"train_loss": tr, "val_loss": val})
            start = end
        return history

    def report(self, val_losses: list[float] | None = None, *, train_error: float | None = None,
               val_error: float | None = None, human_error: float | None = None,
               overfit_window: int = 5, val_examples: int | None = None) -> Report:
        """The monitors' verdicts and the post-flight diagnosis as a :class:`Report`.

        Args:
            val_losses: validation losses at evenly spaced points of the run (else those given to :meth:`validate`).
            train_error, val_error: final error rates (1 - accuracy), for the bias/variance split.
            human_error: the human-level (Bayes proxy) error; without it the avoidable bias is "unknown".
            overfit_window: validation loss rising this many evaluations in a row while training loss falls.
            val_examples: the validation set's size: a train/val gap within two standard errors of the
                validation error is not read as variance.
        """
        held = plateaus_held(sys._getframe(1), [*self._given, *self.probe.optimizers]) if self.frames_read else []
        self._plateaus_now = held + [s for s in self.held_plateaus if all(s is not h for h in held)]
        copies = copies_held(sys._getframe(1), self.probe.model) if self.frames_read else []
        self._copies_now = copies + [c for c in self.held_copies if all(c is not h for h in copies)]
        try:
            with warnings.catch_warnings():  # the readings' forwards run without gradients: a reentrant checkpointed
                warnings.filterwarnings("ignore", message=checkpointing.NO_GRAD_INPUTS)  # segment's warning is theirs
                return self._report(val_losses, train_error, val_error, human_error, overfit_window, val_examples)
        finally:
            self._plateaus_now, self._copies_now = [], []

    def _report(self, val_losses, train_error, val_error, human_error, overfit_window, val_examples) -> Report:
        self._policy.mark(self.probe.steps)  # 2-class steps whose loss graph held a policy-gradient term
        collapsed = collapse(self.monitor.records)
        verdicts = self.monitor.verdicts() + ([collapsed] if collapsed is not None else []) + wv.loop_verdicts(self)
        phases = ["monitor"] * len(verdicts)
        losses = self.losses
        ys = [y.cpu() for y in self._ys]
        early, floors, bound = self._curve_floors(losses, ys)
        classes = mean_cross_entropy_classes(self.probe.steps)  # ln C: an untrained classifier's loss, a validation
        # loss there learned nothing
        untrained = math.log(classes) if classes and classes > 1 else None
        whole = early + losses  # the loss curve: from the steps before the watch began, when there were any

        def read(start: int) -> diagnosis.Verdict:  # start: a watched step's index (the rereads' count in losses)
            at = start + len(early) if start else 0
            return diagnosis.learning_rate_diagnosis(whole[at:], self.batch_size, bound=bound, untrained=untrained,
                                                     floor=floors[at:] if isinstance(floors, list) else floors)

        curve = reread_after_warmup(read(0), self.probe.lrs, losses, read)  # a warm-up's climb is no low rate
        beta = heavy_ball(self.probe.optimizers) if self._fresh_momentum or self.first_step is not None else None
        curve = reread_after_buildup(curve, beta, len(whole), lambda s: read(max(s - len(early), 0)),  # momentum's
                                     lambda steps: diagnosis.learning_rate_diagnosis(
                                         [whole[i] for i in steps], self.batch_size, bound=bound, untrained=untrained,
                                         floor=[floors[i] for i in steps] if isinstance(floors, list) else floors))
        curve = reread_after_reset(curve, self._inits.partial_resets(), losses, read)  # a layer reset's jump
        curve = reread_after_weights(curve, self.probe.steps, losses, read)  # a loss weight's schedule
        verdicts = tuned_clipping(verdicts, curve)  # clipped every step, at a step length the curve shows works
        curve = plateau_at_healthy_steps(self, curve)  # a plateau with healthy steps may be the loss's floor
        rate = self._state.optimizer.param_groups[0].get("lr") if self._state.optimizer else None
        curve = grown_norms(curve, self._norms, self.probe, self._first_forward, rate)  # a scale-invariant head's
        curve = collapsed_head(curve, self._norms, self.probe, self._first_forward, rate, losses)  # slowness, stall
        curve = summed_batch_loss(curve, self._loss_inputs.training_call.read)  # a rate chosen for the mean
        curve = with_rate(curve, self.probe.lrs, self.probe.group_lrs, heavy_ball(self.probe.optimizers))  # "from
        # 5 to 0.5-1.7", not only "3-10x", and the effective rates under momentum
        if not whole and self.probe.opt_steps >= 2:  # the loop stepped on gradients no loss's backward() made
            curve = diagnosis.Verdict(curve.check, "skip", f"skipped: no training loss seen on the "
                                      f"{self.probe.opt_steps} optimizer steps (no backward() on a loss: the loop "
                                      "writes .grad itself)", "-", "pass the loss as w.step(loss) to have its curve "
                                      "read")
        history = self._history(val_losses)
        start = self.probe.steps[0] if self.probe.steps else {}
        trained = predicts_labels(start.get("first_logits"), start.get("first_labels"))
        # a validation that does not measure the model's loss (its average, its labels) tells no memorization
        compared = [] if mismeasured_validation(verdicts) else history
        flat = with_rate(wv.flat_direction(self, curve), self.probe.lrs, self.probe.group_lrs)  # its 10x in numbers
        post = [wv.game(self, memorizing(flat, compared, classes, trained))]
        if history:
            onset = OverfitDetector(overfit_window).detect([h["train_loss"] for h in history],
                                                           [h["val_loss"] for h in history])
            copy_evaluated = 0 < self.probe.validations == self.probe.unseen_validations  # an EMA copy evaluated
            post.append(diagnosis.overfitting(history, onset, classes, losses[0] if losses else None, trained,
                                              copy_evaluated))
        if train_error is not None and val_error is not None:
            post.append(diagnosis.bias_variance(train_error, val_error, human_error, val_examples=val_examples))
        model = type(self._state.model).__name__
        deferred = defer_to_binary_targets(defer_to_empty_epochs(defer(explained_by_shift(verdicts + post))))  # each
        # names its cause
        deferred = defer_diverged_validation(deferred, whole)  # a diverged run's validation, its NaN: what made
        # it diverge
        return Report(agree(deferred), f"trainwell doctor: watching {model}", phases + ["post"] * len(post))

    def _curve_floors(self, losses: list[float], ys: list) -> tuple[list[float], float | list[float], bool]:
        """The losses of the steps before the watch began that the loss curve starts with, the curve's floor (a
        number, or one per step of that curve) and whether it is a bound. Floors per step need every step's labels:
        without the earlier steps' the curve starts at the watch."""
        def floors_of(ys, losses):
            floor = (ll.soft_target_floors(ys, losses) or supcon_floors(self._contrastive, ys, losses) or
                     ll.loss_floor(self.probe))
            binary = None if floor else soft_binary_floors(self.probe.binary_reads, ys, losses)
            return floor or binary or 0.0, binary is not None and floor_is_a_bound(self.probe.binary_reads)

        floors, bound = floors_of(ys, losses)
        early = self._before
        if early and isinstance(floors, list):
            labelled = all(isinstance(y, torch.Tensor) for y in self._before_ys)
            whole = floors_of([y.cpu() for y in self._before_ys] + ys, early + losses) if labelled else (None, False)
            if isinstance(whole[0], list) and len(whole[0]) == len(early) + len(losses):
                floors, bound = whole
            else:
                early = []
        return list(early), floors, bound


def watch(model: nn.Module, optimizer: torch.optim.Optimizer | list[torch.optim.Optimizer], every: int = 50,
          **options) -> Watch:
    """Watch your own training loop: ``with watch(model, optimizer, every=50) as w:`` ... ``w.step(loss)`` per
    step, then ``w.report()``. ``optimizer``: your optimizer, or the list of them when several step together (e.g.
    ``SparseAdam`` for a sparse embedding beside ``Adam``). ``options``: ``batch_size`` (quoted by the LR
    diagnosis) and the thresholds of :class:`~trainwell.doctor.monitors.Monitor` (``dead_warn``,
    ``saturation_warn``, ``update_range``, ``depth_ratio``, ``bins``)."""
    return Watch(model, optimizer, every, **options)
