"""Hooks that read what a hand-written training loop actually does, for :func:`trainwell.doctor.watch`.

On every step (a few Python operations): the optimizer's learning rate when it steps, whether it stepped at all,
and the module's ``training`` flag on each forward pass (that of the latest forward a backward reached). On
observed steps (the first three, then one in ``every``): each parameter's gradient as each ``backward()`` delivers
it (tensor hooks) against what ``.grad`` holds when ``optimizer.step()`` runs (a step pre-hook), the model's output
and the gradient the loss sends back to it (:mod:`trainwell.doctor.loss_form`), and the batch's inputs, of the
forwards a backward reached before the step (:mod:`trainwell.doctor.step_forwards`).

From these, :mod:`trainwell.doctor.loop_verdicts` names the loop's bugs: gradients that accumulate because
``zero_grad()`` is missing, or that are cleared between ``backward()`` and ``step()`` or between accumulated
micro-batches; parameters that receive gradients but that the optimizer does not hold; parameters that never
receive one; clipping on every step; gradient accumulation without dividing the loss; the wrong mode; a schedule
that collapses the rate.
"""

from __future__ import annotations

import math
import weakref

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from trainwell.doctor import game_players
from trainwell.doctor.augmented_validation import ValidationDraws
from trainwell.doctor.backward_passes import OutputGradients
from trainwell.doctor.batch_statistics import NormCounts
from trainwell.doctor.func_transforms import outside_transforms
from trainwell.doctor.input_scale import NORMS
from trainwell.doctor.kept_outputs import KeptOutputs
from trainwell.doctor.loop_forward_hooks import ForwardHooks
from trainwell.doctor.loop_step_hooks import StepHooks
from trainwell.doctor.no_grad_layers import NoGradLayers
from trainwell.doctor.nonfinite_weights import nonfinite_parameters
from trainwell.doctor.observed_steps import phased_step
from trainwell.doctor.reseeded_steps import RandomStates
from trainwell.doctor.row_labels import RowLabels
from trainwell.doctor.step_forwards import StepForwards
from trainwell.doctor.step_readings import fixed_rows
from trainwell.doctor.step_record import held
from trainwell.doctor.stepped_validation import EvalModeRuns
from trainwell.doctor.training_batches import TrainingBatches
from trainwell.doctor.validation_average import ValidationLosses
from trainwell.doctor.validation_graphs import ValidationGraphs
from trainwell.doctor.validation_inputs import SplitInputs
from trainwell.doctor.validation_rows import SplitRows
from trainwell.doctor.wrapper_optimizers import hookable

_MODE_SENSITIVE = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)
_WEIGHTED = (nn.Linear, nn.modules.conv._ConvNd)


def _compiled(model: nn.Module) -> bool:
    """Whether ``model`` or a submodule of it runs under ``torch.compile`` (``module.compile()`` in place, or a
    submodule replaced by its ``torch.compile`` wrapper; a whole model's wrapper's original module is what the probe
    sees): its hooks are then called from compiled code."""
    return any(getattr(m, "_compiled_call_impl", None) is not None or isinstance(getattr(m, "_orig_mod", None),
                                                                                  nn.Module) for m in model.modules())


class LoopProbe(ForwardHooks, StepHooks):
    """Hooks on a user's model and optimizers. ``attach()`` installs them, ``detach()`` removes every one; the
    hooks themselves are :class:`~trainwell.doctor.loop_forward_hooks.ForwardHooks`' (each forward) and
    :class:`~trainwell.doctor.loop_step_hooks.StepHooks`' (gradients, optimizer steps, validations).

    With several optimizers (e.g. ``SparseAdam`` for a sparse embedding and ``Adam`` for the rest) the first one's
    steps are the loop's steps (rate, observed steps); every optimizer's parameters count as held."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | list, every: int = 50, *,
                 compiled: bool = False):
        optimizers = list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer]
        for o in optimizers:
            hookable(o)
        self.model, self.optimizers, self.every = model, optimizers, max(1, int(every))
        self.optimizer = optimizers[0]
        self.compiled = compiled or _compiled(model)
        self.named = dict(model.named_parameters())
        self.frozen_at_start = {id(p) for p in self.named.values() if not p.requires_grad}  # unfrozen later?
        self.nonfinite_at_start = nonfinite_parameters(self.named)  # NaN/Inf weights before the loop's first step
        self.owned = self.held_now()
        model_ids = {id(p) for p in self.named.values()}
        self.foreign = [tuple(p.shape) for o in optimizers for g in o.param_groups for p in g["params"]
                        if id(p) not in model_ids]
        self.mode_sensitive = [n for n, m in model.named_modules() if isinstance(m, _MODE_SENSITIVE)]
        self.batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        # BatchNorm layers with weights and running statistics: their mode is read on every training forward
        self.norms = [(n, m) for n, m in model.named_modules()
                      if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine and m.track_running_stats]
        self._norms_training: set[str] = set()  # those in train mode in this step's training forwards
        self.frozen_norm_steps = 0  # training steps that ran BatchNorm layers with frozen weights in train mode
        self.frozen_norms: set[str] = set()  # which ones
        self.frozen_weights: dict[str, torch.Tensor] = {}  # their weight and bias when first seen (an EMA moves them)
        self.single_example_forwards = 0  # training forwards of a batch of 1 through BatchNorm
        self.norm_values = NormCounts(model)  # the values per channel BatchNorm normalized on observed steps
        self.no_grad_layers = NoGradLayers()  # layers run without gradients inside a training forward
        self.random_states = RandomStates()  # the global random state at each step's forward and w.step
        self.kept_outputs = KeptOutputs()  # markers on the training forwards' output graphs, the first few
        self.mode_sample: tuple | None = None  # a few rows of a training forward's arguments, to test the mode on
        self.step_forward: tuple | None = None  # an observed step's latest training forward's (args, kwargs)
        self.step_forwards = StepForwards()  # an observed step's forwards with gradients: did a backward reach them?
        self.reading = False  # the probe runs the model itself: its hooks record nothing
        self._closure_step = False  # the step being taken was given a closure (L-BFGS): read after it
        self.opt_steps = 0
        self.skipped = 0  # w.step calls whose optimizer step was skipped on non-finite gradients (AMP's GradScaler)
        self.idle_calls = 0  # w.step calls with no optimizer step (of any of the optimizers) since the previous one
        self.steps_by_optimizer = [0] * len(optimizers)  # every optimizer's own count of steps
        self._steps_at_call = 0
        self.calls = self.last_active_call = 0  # w.step calls, and the last one after an optimizer step
        self.successors: list = []  # the optimizers of the loop the script moved on to after this one's
        self.lrs: list[float] = []  # the first param group's rate at each step
        self.group_lrs: list[list[float]] = []  # every group's, when there are several
        self.max_lrs: list[float | None] = []  # every group's 'max_lr' (OneCycleLR's peak) at the last observed step
        self.initial_lrs: list[float | None] = []  # every group's 'initial_lr' (a scheduler's base rate), likewise
        # every group's rate when the watch began (the rate the optimizer was built with, or a scheduler set)
        self.start_lrs: list[float] = [_float_or_nan(g.get("lr")) for g in self.optimizer.param_groups]
        # (dtype, share of the elements with a gradient that the step left unchanged) of low-precision weights
        self.low_precision: list[tuple[str, float]] = []
        self._low_before: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.steps: list[dict] = []  # one record per observed optimizer step
        self.other_reads: list[dict] = []  # the other optimizers' .grad at their observed steps (other_optimizers)
        self._others_read: set[int] = set()  # of them, those read since the probe was last armed
        self._trailing = None  # the hook that reads them after the first optimizer's observed step
        self.received: set[str] = set()  # parameters that got a gradient on an observed step
        self.assigned: set[str] = set()  # parameters whose .grad the loop wrote itself, with no backward pass
        self.reached: set[str] = set()  # parameters a backward reached on an observed step (a gradient, maybe 0)
        # parameters no watched optimizer holds: their values' fingerprint at the last observed step, and those that
        # moved between two observed steps (an optimizer not given to the watch steps them)
        self.unheld_values: dict[str, tuple[float, float]] = {}
        self.unheld_moved: set[str] = set()
        self.inputs: list[dict] = []  # observed training forwards: scale and a fingerprint
        self.split_inputs = SplitInputs()  # the training inputs against the validation inputs
        self.split_rows = SplitRows()  # the training rows' keys against the validation rows' keys
        self.row_labels = RowLabels(self.split_rows.keys)  # the training rows' keys and their labels, over the run
        self.validation_draws = ValidationDraws()  # the first validations' row keys, against each other
        self.validation_losses = ValidationLosses()  # the loss calls after forwards without gradients or in eval
        self.validation_losses.masked = self._masked_rows
        self.first_reached: torch.Tensor | None = None  # the output rows the loop's first step reached, when read
        self._input_rows: int | None = None  # the rows of the latest forward's input (a validation's sequences)
        self._forward_inputs: set = set()  # where the floating-point inputs of the last one recorded lie
        self._first_out: weakref.ref | None = None  # the output of the first weighted layer of the latest forward
        self.train_steps = self.eval_mode_steps = 0
        self.eval_runs = EvalModeRuns()  # the first batch of each run of eval-mode steps (a validation that steps)
        self.validations = self.train_mode_validations = 0
        self.mc_dropout_validations = 0  # validations of repeated train-mode passes over the same inputs
        self._sampled_inputs: list[tuple] = []  # fingerprints of the train-mode no-grad forwards since the last step
        self.unseen_validations = 0  # w.validate() calls with no forward of the watched model since the last step
        self.validation_graphs = ValidationGraphs()  # eval-mode forwards with gradients: did a backward reach them?
        self.validation_steps: list[int] = []  # the optimizer steps recorded before each validation (epoch ends)
        self.unregistered: list[str] | None = None
        self.input_leaves: list[torch.Tensor] = []  # the first step's inputs that require grad (a penalty's)
        # why the loss is one player's in a game (a GAN) rather than a loss the watched parameters minimize: its
        # curve is then not read for the learning rate (None: a supervised loss, as far as the hooks saw)
        self.game: str | None = None
        # the game's loss goes through the other player's parameters (a generator's, through its discriminator):
        # its targets are the answer it asks of that player, one value by design
        self.asks_other_player = False
        # the loss goes through a copy of the model (its parameters, one for one) while the optimizer holds the
        # model's, which get no gradient (:mod:`~trainwell.doctor.copied_model`): how many of the copy's
        self.copy_trained = 0
        self.nonfinite_input_step: int | None = None  # the first unobserved step whose inputs held NaN/Inf
        self.scores_dropout: str | None = None  # a dropout module whose output is the model's scores
        self.stepped_before_forward = False  # the first optimizer step came before any training forward
        self.multi_output = False  # the model returns several trained tensors (class scores and boxes, say)
        self.output_shapes: dict[str, tuple] = {}  # a dict output's fields' shapes (``['shape']``), observed steps
        self._game_reads = 0
        self.produced: list[int] = []  # where the latest outputs are stored, while another watch is open too
        self.loss_leaves: set[int] = set()  # ids of the tensors the first loss went through
        self.upstream: set[int] = set()  # ids of the trainable tensors the model's inputs were computed from
        self.scores_sigmoid: str | None = None  # an nn.Sigmoid module whose output is the model's scores
        # (name, class) of a BatchNorm in train mode whose output is the model's scores (one after the last layer)
        self.scores_batchnorm: tuple[str, str] | None = None
        self._last_outs: dict[int, tuple[torch.Tensor, str, nn.Module]] = {}
        # (training, grad enabled, [reached by a backward?], on a training batch) of each forward since the last step
        self._forwards: list[tuple[bool, bool, list[bool], bool]] = []
        # where among them another optimizer given to the watch stepped (a WGAN critic's step after each generator
        # forward that fed it): the dropped forwards are counted between these
        self._other_steps: list[int] = []
        self.dropped_forwards: list[int] = []  # per optimizer step (the first 64): forwards no backward reached
        self.training_batches = TrainingBatches()  # the inputs of the latest forwards with gradients
        self._incoming: dict[int, torch.Tensor] = {}  # what backward() delivered since .grad was last cleared
        self._backwards: dict[int, int] = {}  # backward() passes that delivered to each tensor this step
        self._kept: dict[int, int] = {}  # of them, those since .grad was last cleared
        self._crossed: set[int] = set()  # tensors whose .grad kept a pass from before another optimizer's step
        self._delivered: dict[int, tuple[int, int]] = {}  # (tick, the tensor's version) at its latest delivery
        self._other_step = 0  # the tick of the latest step of an optimizer besides the first one
        # (the latest backward pass's tick, the optimizer) at each optimizer step before the first w.step()
        self.turns: list[tuple[int, int]] | None = []
        self._outs = OutputGradients()
        self.scored: tuple | None = None  # the latest observed step's (logits, their gradient), for its targets
        # the latest observed step's (outputs, gradient) per micro-batch, for the loss's value
        self.regressed: list[tuple] | None = None
        self.reductions: list = []  # per observed step read so: a regression_reduction.Reading, or None
        # per observed step given probability targets: the loss's form against them (distribution_targets.read_against)
        self.distribution_reads: list[dict | None] = []
        self.two_class: tuple | None = None  # the latest observed step's (2-class logits, gradient), for its value
        self.binary_pair: tuple | None = None  # the latest observed step's (outputs, gradient), read as BCE with it
        self.binary_reads: list[dict | None] = []  # per observed step so read: the binary cross-entropy, or None
        self.nll_pair: tuple | None = None  # the latest observed step's (scores, gradient) of NLL's form, given targets
        self.pos_weight_reads: list = []  # per observed step with 0/1 targets: the positives' weights per column
        self._hooks: list = []
        self._followed: dict[int, list] = {}  # the hooks on the optimizers built again in place of the watched ones
        self._grad_hooks: list = []
        self._layer_hooks: list = []
        self._armed = False
        self._tick = self._last_backward = self._last_forward = 0  # the order of forwards and backward passes

    def _masked_rows(self) -> tuple[int, int] | None:
        """(rows reached, rows) when the training loss reaches a fixed subset of its output's rows
        (:func:`~trainwell.doctor.step_readings.fixed_rows`)."""
        if not self.steps and self.first_reached is not None:  # trainwell watch: the step before the watch began
            return fixed_rows([{"reached_rows": self.first_reached}])
        return fixed_rows(self.steps)

    def held_now(self) -> set[int]:
        return set().union(*(held(o) for o in self.optimizers))

    def _hook(self, fn):
        """``fn`` as a hook: left out of the graph when the model is compiled (its reads of tensors into Python
        numbers would break the graph and print dynamo's warnings), and not called on a forward run inside a
        torch.func transform (:func:`~trainwell.doctor.func_transforms.outside_transforms`)."""
        fn = outside_transforms(fn)
        return torch.compiler.disable(fn) if self.compiled else fn

    def stopped_stepping(self) -> bool:
        """The optimizers given to the watch stepped, then stopped for the last 3 or more ``w.step`` calls."""
        return self.last_active_call > 0 and self.calls - self.last_active_call >= 3

    def forward_with_grad(self) -> bool:
        """Whether the watched model's latest forward since the last step ran with gradients (False: none ran)."""
        return bool(self._forwards) and self._forwards[-1][1]

    @property
    def frozen(self) -> list[str]:
        """The parameters that do not require a gradient now and received none on an observed step: a layer that
        trained in this loop and was frozen after it, for a later phase (a pretrained body under adapters or a new
        head), is not frozen in this loop's report."""
        return [n for n, p in self.named.items() if not p.requires_grad and n not in self.received]

    # -- hooks ---------------------------------------------------------------------------------------------
    def attach(self) -> None:
        self._hooks = self._forward_hooks() + [self.optimizer.register_step_pre_hook(self._pre_step),
                                               self.optimizer.register_step_post_hook(self._post_step)]
        self._hooks += [o.register_step_post_hook(self._counter(i)) for i, o in enumerate(self.optimizers)]
        game_players.opened(self)
        self._arm()

    def follow(self, old, new) -> bool:
        """``new`` (an optimizer built again over ``old``'s parameters) takes ``old``'s place: its steps are read as
        ``old``'s were (its hooks go at :meth:`detach`); False when ``old`` is not one of the watched optimizers."""
        i = next((k for k, o in enumerate(self.optimizers) if o is old), None)
        if i is None or not self._hooks:
            return False
        self.optimizers[i] = new
        hookable(new)
        hooks = [new.register_step_pre_hook(self._pre_step), new.register_step_post_hook(self._post_step)] \
            if i == 0 else []
        if i == 0:
            self.optimizer = new
        for h in self._followed.pop(i, []):  # those on the one followed before (built again every step)
            h.remove()
        self._followed[i] = hooks + [new.register_step_post_hook(self._counter(i))]
        return True

    def read_as_model(self, module: nn.Module, when) -> list:
        """Hooks reading ``module``'s forwards as the watched model's (a copy evaluated in its place), each run
        through ``when`` (a wrapper that lets the forwards to read through)."""
        return [module.register_forward_pre_hook(self._hook(when(self._pre_forward)), with_kwargs=True),
                module.register_forward_hook(self._hook(when(self._post_forward)))]

    def _forward_hooks(self) -> list:
        return [self.model.register_forward_pre_hook(self._hook(self._pre_forward), with_kwargs=True),
                self.model.register_forward_hook(self._hook(self._post_forward))]

    def runs_compiled(self) -> None:
        """The loop compiled the model after :meth:`attach`: its forward hooks are put back left out of the graph
        (the hooks of an observed step are, when it is next armed)."""
        if self.compiled:
            return
        self.compiled = True
        if self._hooks:
            for h in self._hooks[:2]:
                h.remove()
            self._hooks[:2] = self._forward_hooks()

    def _counter(self, i: int):
        def count(optimizer, args, kwargs) -> None:
            self.steps_by_optimizer[i] += 1
            if i and len(self._other_steps) < 4096:
                self._other_steps.append(len(self._forwards))
        return count

    def detach(self) -> None:
        game_players.closed(self)
        self._disarm()
        self.untrail()
        for h in self._hooks + [h for hooks in self._followed.values() for h in hooks]:
            h.remove()
        self._hooks, self._followed = [], {}

    def _observed(self, k: int) -> bool:
        """Whether step ``k`` (from 0) is read whole: the first three, then one in each block of ``every`` steps
        (:func:`~trainwell.doctor.observed_steps.phased_step`)."""
        return k < 3 or phased_step(k, self.every)

    def _arm(self) -> None:
        self._incoming, self._backwards, self._outs = {}, {}, OutputGradients()
        self._kept, self._crossed, self._delivered = {}, set(), {}
        self._others_read = set()
        self.step_forwards = StepForwards()
        # a lazy module's parameters take hooks once its first forward has given them a shape
        self._grad_hooks = [p.register_hook(self._grad_hook(p)) for p in self.named.values()
                            if p.requires_grad and not nn.parameter.is_lazy(p)]
        self._grad_hooks.append(register_optimizer_step_post_hook(self._any_step))
        if len(self.optimizers) > 1:
            self._grad_hooks.append(register_optimizer_step_pre_hook(self._any_pre_step))
        # the input the first weighted layer receives: the scale that matters when the model normalizes its input
        first = self._hook(self._first_layer_input)
        self._layer_hooks = [m.register_forward_hook(first) for m in self.model.modules()
                             if isinstance(m, _WEIGHTED)]
        normed = self._hook(self._first_layer_normalized)  # a norm fed that layer's output may restore its scale
        self._layer_hooks += [m.register_forward_pre_hook(normed) for m in self.model.modules()
                              if isinstance(m, NORMS)]
        self._last_outs = {}
        # the modules that may give the scores last: a dropout (named once found), a Sigmoid (before a loss that
        # applies its own), a BatchNorm (named once found)
        kinds = (nn.Sigmoid,) + ((nn.modules.dropout._DropoutNd,) if self.scores_dropout is None else ()) + \
            ((nn.modules.batchnorm._BatchNorm,) if self.scores_batchnorm is None else ())
        self._layer_hooks += [m.register_forward_hook(self._hook(self._last_output(name)))
                              for name, m in self.model.named_modules() if isinstance(m, kinds)]
        self._layer_hooks += self.norm_values.attach(self.model, self._hook, lambda: self.reading)
        self._layer_hooks += self.no_grad_layers.attach(self.model, self._hook)
        self._armed = True

    def _disarm(self) -> None:
        for h in self._grad_hooks + self._layer_hooks:
            h.remove()
        self._grad_hooks, self._layer_hooks, self._armed = [], [], False

    def step_recorded(self) -> bool:
        """Called by ``Watch.step``; returns whether the call is idle: no optimizer (of any given) stepped since the
        previous call. That is a step AMP's GradScaler skipped (its gradients are not finite: what was gathered for
        it is dropped) or ``w.step`` called per micro-batch."""
        total = sum(self.steps_by_optimizer)
        idle = total == self._steps_at_call
        self.calls += 1
        self.untrail()
        if not idle:
            self.last_active_call = self.calls
        if idle:
            self.idle_calls += 1
            if self._armed and any(not bool(torch.isfinite(g).all()) for g in self._incoming.values()
                                   if not g.is_sparse):
                self.skipped += 1
                self._disarm()
                self._arm()
        self._steps_at_call = total
        return idle


def _float_or_nan(value) -> float:
    """A param group's rate as a float (a tensor's too); NaN when it is none."""
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        return math.nan
