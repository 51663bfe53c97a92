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
from torch.optim.optimizer import register_optimizer_step_post_hook

from trainwell.doctor import game_players, registration
from trainwell.doctor import outputs as O
from trainwell.doctor.backward_passes import OutputGradients
from trainwell.doctor.batch_statistics import NormCounts
from trainwell.doctor.input_scale import NORMS, first_layer_reads_input, nonzero_abs_quantile, norm_scale, storage_keys
from trainwell.doctor.kept_outputs import KeptOutputs
from trainwell.doctor.no_grad_layers import NoGradLayers
from trainwell.doctor.reseeded_steps import RandomStates
from trainwell.doctor.sampled_validation import fingerprint, mc_dropout
from trainwell.doctor.step_forwards import StepForwards, drop_records
from trainwell.doctor.step_readings import abs_quantile, forward_tensors, input_stats
from trainwell.doctor.step_record import held, read_step
from trainwell.doctor.validation_graphs import ValidationGraphs
from trainwell.doctor.validation_inputs import SplitInputs
from trainwell.doctor.validation_rows import SplitRows

_MODE_SENSITIVE = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)
_WEIGHTED = (nn.Linear, nn.modules.conv._ConvNd)
_HEADS = 3  # the outputs besides the class scores read on an observed forward, at most
#: the forwards' inputs recorded per observed step, at most: a policy called once per environment step makes
#: hundreds of forwards before one optimizer step, and the record is to span the run's observed steps
_INPUTS_PER_STEP = 8


def first_tensor(args, kwargs) -> torch.Tensor | None:
    for value in list(args) + list(kwargs.values()):
        found = O.leaves(value) if not isinstance(value, torch.Tensor) else [value]
        if found:
            return found[0]
    return None


_LOW_PRECISION = (torch.bfloat16, torch.float16)
#: optimizers whose step moves each element by about the rate whatever its gradient's size, so one scale on every
#: gradient (clipping) changes the update little (Kingma & Ba 2015, section 2.1)
ADAPTIVE = (torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop, torch.optim.Adagrad, torch.optim.Adamax,
             torch.optim.NAdam, torch.optim.RAdam, torch.optim.Adadelta)


def _compiled(model: nn.Module) -> bool:
    """Whether ``model`` or a submodule of it runs under ``torch.compile`` (``module.compile()`` in place, or a
    submodule replaced by its ``torch.compile`` wrapper; a whole model's wrapper's original module is what the probe
    sees): its hooks are then called from compiled code."""
    return any(getattr(m, "_compiled_call_impl", None) is not None or isinstance(getattr(m, "_orig_mod", None),
                                                                                  nn.Module) for m in model.modules())


class LoopProbe:
    """Hooks on a user's model and optimizers. ``attach()`` installs them, ``detach()`` removes every one.

    With several optimizers (e.g. ``SparseAdam`` for a sparse embedding and ``Adam`` for the rest) the first one's
    steps are the loop's steps (rate, observed steps); every optimizer's parameters count as held."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | list, every: int = 50, *,
                 compiled: bool = False):
        optimizers = list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer]
        self.model, self.optimizers, self.every = model, optimizers, max(1, int(every))
        self.optimizer = optimizers[0]
        self.compiled = compiled or _compiled(model)
        self.named = dict(model.named_parameters())
        self.frozen_at_start = {id(p) for p in self.named.values() if not p.requires_grad}  # unfrozen later?
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
        self.lrs: list[float] = []  # the first param group's rate at each step
        self.group_lrs: list[list[float]] = []  # every group's, when there are several
        self.max_lrs: list[float | None] = []  # every group's 'max_lr' (OneCycleLR's peak) at the last observed step
        self.initial_lrs: list[float | None] = []  # every group's 'initial_lr' (a scheduler's base rate), likewise
        # (dtype, share of the elements with a gradient that the step left unchanged) of low-precision weights
        self.low_precision: list[tuple[str, float]] = []
        self._low_before: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.steps: list[dict] = []  # one record per observed optimizer step
        self.received: set[str] = set()  # parameters that got a gradient on an observed step
        self.reached: set[str] = set()  # parameters a backward reached on an observed step (a gradient, maybe 0)
        self.inputs: list[dict] = []  # observed training forwards: scale and a fingerprint
        self.split_inputs = SplitInputs()  # the training inputs against the validation inputs
        self.split_rows = SplitRows()  # the training rows' keys against the validation rows' keys
        self._forward_inputs: set = set()  # where the floating-point inputs of the last one recorded lie
        self._first_out: weakref.ref | None = None  # the output of the first weighted layer of the latest forward
        self.train_steps = self.eval_mode_steps = 0
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
        self.nonfinite_input_step: int | None = None  # the first unobserved step whose inputs held NaN/Inf
        self.scores_dropout: str | None = None  # a dropout module whose output is the model's scores
        self.stepped_before_forward = False  # the first optimizer step came before any training forward
        self.multi_output = False  # the model returns several trained tensors (class scores and boxes, say)
        self._game_reads = 0
        self.produced: list[int] = []  # where the latest outputs are stored, while another watch is open too
        self.loss_leaves: set[int] = set()  # ids of the tensors the first loss went through
        self.upstream: set[int] = set()  # ids of the trainable tensors the model's inputs were computed from
        self.scores_sigmoid: str | None = None  # an nn.Sigmoid module whose output is the model's scores
        # (name, class) of a BatchNorm in train mode whose output is the model's scores (one after the last layer)
        self.scores_batchnorm: tuple[str, str] | None = None
        self._last_outs: dict[int, tuple[torch.Tensor, str, nn.Module]] = {}
        # (training, grad enabled, [reached by a backward?]) of each forward since the last step
        self._forwards: list[tuple[bool, bool, list[bool]]] = []
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
        self.pos_weight_reads: list = []  # per observed step with 0/1 targets: the positives' weights per column
        self._hooks: list = []
        self._grad_hooks: list = []
        self._layer_hooks: list = []
        self._armed = False
        self._tick = self._last_backward = self._last_forward = 0  # the order of forwards and backward passes

    def held_now(self) -> set[int]:
        return set().union(*(held(o) for o in self.optimizers))

    def _hook(self, fn):
        """``fn`` as a hook: left out of the graph when the model is compiled (its reads of tensors into Python
        numbers would break the graph and print dynamo's warnings)."""
        return torch.compiler.disable(fn) if self.compiled else fn

    def stopped_stepping(self) -> bool:
        """The optimizers given to the watch stepped, then stopped for the last 3 or more ``w.step`` calls."""
        return self.last_active_call > 0 and self.calls - self.last_active_call >= 3

    def forward_with_grad(self) -> bool:
        """Whether the watched model's latest forward since the last step ran with gradients (False: none ran)."""
        return bool(self._forwards) and self._forwards[-1][1]

    @property
    def frozen(self) -> list[str]:
        """The parameters that do not require a gradient now."""
        return [n for n, p in self.named.items() if not p.requires_grad]

    # -- hooks ---------------------------------------------------------------------------------------------
    def attach(self) -> None:
        self._hooks = self._forward_hooks() + [self.optimizer.register_step_pre_hook(self._pre_step),
                                               self.optimizer.register_step_post_hook(self._post_step)]
        self._hooks += [o.register_step_post_hook(self._counter(i)) for i, o in enumerate(self.optimizers)]
        game_players.opened(self)
        self._arm()

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
        return count

    def detach(self) -> None:
        game_players.closed(self)
        self._disarm()
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def _observed(self, k: int) -> bool:
        return k < 3 or (k + 1) % self.every == 0

    def _arm(self) -> None:
        self._incoming, self._backwards, self._outs = {}, {}, OutputGradients()
        self._kept, self._crossed, self._delivered = {}, set(), {}
        self.step_forwards = StepForwards()
        # a lazy module's parameters take hooks once its first forward has given them a shape
        self._grad_hooks = [p.register_hook(self._grad_hook(p)) for p in self.named.values()
                            if p.requires_grad and not nn.parameter.is_lazy(p)]
        self._grad_hooks.append(register_optimizer_step_post_hook(self._any_step))
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

    def _first_layer_input(self, module, args, out) -> None:
        if torch.is_grad_enabled() and not self.reading:
            self.step_forwards.first_layer(out)
        entry = self.inputs[-1] if self.inputs else None
        if entry is None or "layer_std" in entry or entry["step"] != self.opt_steps or not torch.is_grad_enabled():
            return
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        entry["layer_std"] = None  # the first weighted layer of this forward has been seen
        self._first_out = weakref.ref(out) if isinstance(out, torch.Tensor) else None
        if x is not None and x.is_floating_point() and x.numel() > 1:
            xd = x.detach().float()
            entry["layer_std"], entry["layer_q99"] = float(xd.std()), abs_quantile(xd)
            if first_layer_reads_input(x, self._forward_inputs):  # the model's own input, as it was given
                entry["layer_nz_q99"] = nonzero_abs_quantile(xd)

    def _first_layer_normalized(self, module, args) -> None:
        """The std a BatchNorm, LayerNorm or GroupNorm fed the first weighted layer's output makes of it across the
        examples (``norm_scale``)."""
        entry = self.inputs[-1] if self.inputs else None
        first = self._first_out() if self._first_out is not None else None
        if entry is None or first is None or "norm_scale" in entry or not args or args[0] is not first:
            return
        entry["norm_scale"] = norm_scale(module, first)

    def _any_step(self, optimizer, args, kwargs) -> None:
        """Every optimizer's step while armed (a global hook): another player's (a GAN's discriminator) takes the
        gradients delivered before it."""
        if self.turns is not None:
            self.turns.append((self._last_backward, id(optimizer)))
        if optimizer is not self.optimizer:
            self._tick += 1
            self._other_step = self._tick

    def _grad_hook(self, p: torch.Tensor):
        pid = id(p)

        def hook(g):  # runs before ``g`` is added to p.grad: p.grad is what the earlier passes left
            self._tick += 1
            self._last_backward = self._tick
            seen = self._incoming.get(pid)
            if seen is not None and _nonzero(seen):
                tick, version = self._delivered[pid]
                stepped = self._other_step > tick  # another optimizer stepped since (a GAN's other player)
                if _cleared(p.grad):  # used if it stepped, or if the tensor changed in place (SAM's ascent step)
                    self._cleared_since(pid, stepped or p._version != version)
                    seen = None
                elif stepped:
                    self._crossed.add(pid)  # .grad keeps a pass from before another optimizer's step
            self._incoming[pid] = g.detach().clone() if seen is None else seen + g.detach()
            self._outs.filled()
            self._backwards[pid] = self._backwards.get(pid, 0) + 1
            self._kept[pid] = self._kept.get(pid, 0) + 1
            self._delivered[pid] = (self._tick, p._version)
        return hook

    def _cleared_since(self, pid: int, handed_on: bool) -> None:
        """``.grad`` was cleared (``zero_grad()``) after earlier passes delivered to it: what they delivered is gone
        from it. Passes that came before another optimizer's step (a GAN's discriminator's loss reaching the
        generator) or before the tensor changed in place (SAM's ascent step) were used and are not this step's;
        passes with neither after them were thrown away (zero_grad inside a gradient accumulation)."""
        self._kept[pid] = 0
        if handed_on:
            self._outs.handed_on()
            self._backwards[pid] = 0
            self._crossed.discard(pid)

    def _pre_forward(self, module, args, kwargs):
        if self.reading:
            return
        grad = torch.is_grad_enabled()
        self._forwards.append((module.training, grad, [False]))
        if grad:
            self._norms_training.update(n for n, m in self.norms if m.training)
            self._tick += 1
            self._last_forward = self._tick
        if not grad:
            self.split_inputs.no_grad(first_tensor(args, kwargs))
            self.split_rows.no_grad(first_tensor(args, kwargs))
            if module.training:
                self._sampled_inputs.append(fingerprint(first_tensor(args, kwargs)))
            return
        x = first_tensor(args, kwargs)
        self.split_rows.with_grad(x)
        self.random_states.forward_started(module, x)
        if not module.training:
            self.split_inputs.eval_with_grad(x)
        forward = self.step_forwards.opened((args, kwargs), x, self._tick) if self._armed else None
        if x is None:
            return
        if self._armed:
            self.step_forward = forward.call if forward is not None else (args, kwargs)
        if self.batchnorm and module.training and x.dim() > 1 and len(x) == 1:
            self.single_example_forwards += 1
        # every training batch on a CPU (one pass over it, no device wait): NaN in a few rows of the data
        if self.nonfinite_input_step is None and x.device.type == "cpu" and x.is_floating_point() and \
                not math.isfinite(float(x.detach().sum(dtype=torch.float64))):  # NaN/Inf anywhere: one sum
            self.nonfinite_input_step = self.opt_steps
        self._read_game_input(x)
        if self._armed:
            self._record_observed(args, kwargs, forward)

    def _read_game_input(self, x: torch.Tensor) -> None:
        """Whether a training forward's input is another model's output (a GAN's generator's samples)."""
        # an input computed by trainable tensors (rare outside a GAN): its graph is read a few times at most
        if self.game is None and x.grad_fn is not None and self._game_reads < 8:
            self._game_reads += 1
            self._fed_by_another_model(x)
        if self.game is None and x.grad_fn is None:
            other = game_players.producer(self, x)
            if other is not None:
                self.game = (f"its inputs are the outputs of {other}, watched in another doctor.watch (a GAN's "
                             "generator's samples): it reads one player of a two-player game")

    def _record_observed(self, args, kwargs, forward) -> None:
        """An observed step's forward with gradients: its inputs' readings (kept with ``forward``, dropped if no
        backward reaches it) and, for the first one, the batch sampled for the mode."""
        if len(self.inputs) < 64 and \
                sum(e["step"] == self.opt_steps for e in self.inputs[-_INPUTS_PER_STEP:]) < _INPUTS_PER_STEP:
            self._forward_inputs = storage_keys(forward_tensors(args, kwargs))
            self.inputs.append(input_stats(forward_tensors(args, kwargs), self.opt_steps))
            if forward is not None:
                forward.entry = self.inputs[-1]
            if self.opt_steps == 0:
                self.input_leaves += [t for t in forward_tensors(args, kwargs) if t.requires_grad and t.grad_fn is None]
        if not self.mode_sensitive and self.mode_sample is None:
            self.mode_sample = self.step_forward  # the batch's tensors themselves (4 of their rows read at the report)

    def _fed_by_another_model(self, x: torch.Tensor) -> None:
        """An input computed by another module's parameters that no given optimizer steps: the watched model is
        a GAN's discriminator, fed the generator's samples."""
        leaves = registration.graph_leaves(x, limit=20_000)
        self.upstream |= {id(t) for t in leaves}
        if registration.other_models_parameters(self.model, leaves, self.held_now()):
            self.game = ("its inputs come from another model that no optimizer given to doctor.watch steps (a GAN's "
                         "generator; or pass a backbone's optimizer too)")

    def _last_output(self, name: str):
        def record(module, args, out) -> None:
            # the tensor kept till the forward ends (its id is not reused); a forward without gradients is not read
            if isinstance(out, torch.Tensor) and torch.is_grad_enabled():
                self._last_outs[id(out)] = (out, name, module)
        return record

    def _post_forward(self, module, args, out):
        if torch.is_grad_enabled() and not self.reading:
            game_players.produced(self, out)
            if not module.training:
                self.validation_graphs.forwarded(out)
            else:
                self.kept_outputs.forwarded(O.logits(out))
            if self._forwards:
                _on_backward(out, self._forwards[-1][2])
        if not (self._armed and torch.is_grad_enabled()) or self.reading:
            return
        forward = self.step_forwards.latest()
        self.step_forwards.reach(forward, [out] if isinstance(out, torch.Tensor) else O.leaves(out))
        z = O.logits(out)
        if not isinstance(out, torch.Tensor) and not self.multi_output:  # heads besides the class scores
            self.multi_output = sum(t.is_floating_point() and t.requires_grad for t in O.leaves(out)) > 1
        kept = self._last_outs.get(id(z)) if isinstance(z, torch.Tensor) else None
        if kept is not None and kept[0] is z:
            if isinstance(kept[2], nn.Sigmoid):
                self.scores_sigmoid = kept[1]
            elif isinstance(kept[2], nn.modules.batchnorm._BatchNorm):
                if kept[2].training:  # in eval mode it is a fixed affine map of each score
                    self.scores_batchnorm = (kept[1], type(kept[2]).__name__)
            else:
                self.scores_dropout = kept[1]
        self._last_outs = {}
        if isinstance(z, torch.Tensor) and z.is_floating_point() and z.requires_grad:
            x = first_tensor(args, {})
            kept = self._outs.watch(z, single=x is not None and (x.dim() <= 1 or x.shape[0] == 1))
            if forward is not None and kept is not None:
                forward.outputs.append(kept)
        if not isinstance(out, torch.Tensor):  # another head's class scores (a second task's) are read too
            heads = [(name, t) for name, t in O.named_leaves(out) if t is not z and t.is_floating_point()
                     and t.requires_grad and t.dim() >= 2 and t.shape[-1] >= 2]
            for name, t in heads[:_HEADS]:
                kept = self._outs.watch(t, name)
                if forward is not None and kept is not None:
                    forward.outputs.append(kept)

    def _pre_step(self, optimizer, args, kwargs) -> None:  # the first optimizer's
        # step(closure) (L-BFGS): the forward and backward passes run inside the step, so they are read after it
        self._closure_step = any(callable(a) for a in args) or callable(kwargs.get("closure"))
        if self.opt_steps == 0 and not self._closure_step:
            self.stepped_before_forward = self._last_forward == 0
        lr = optimizer.param_groups[0].get("lr", math.nan)
        self.lrs.append(float(lr))
        if len(optimizer.param_groups) > 1:
            self.group_lrs.append([float(g.get("lr", math.nan)) for g in optimizer.param_groups])
        if self._closure_step:
            return
        self._count_forwards()
        if self._armed:
            self._settle_forwards()
            self.max_lrs = [g.get("max_lr") for g in optimizer.param_groups]
            self.initial_lrs = [g.get("initial_lr") for g in optimizer.param_groups]
            self.steps.append(read_step(self))
            self._low_before = [(p, p.detach().clone()) for p in self.named.values()
                                if p.dtype in _LOW_PRECISION and p.grad is not None and not p.grad.is_sparse]

    def _count_forwards(self) -> None:
        """The step's forwards with gradients: one training step, and whether its last forward ran in eval mode."""
        training = [mode for mode, grad, _ in self._forwards if grad]
        # of them, those a backward reached: a forward after the backward (an accuracy logged in eval mode with
        # gradients) is not the step's
        reached = [mode for mode, grad, hit in self._forwards if grad and hit[0]]
        if training:
            self.train_steps += 1
            if not (reached or training)[-1]:
                self.eval_mode_steps += 1
            frozen = self._frozen_norms() if self._norms_training else set()
            if frozen:
                self.frozen_norm_steps += 1
                self.frozen_norms |= frozen
                for n in frozen - self.frozen_weights.keys():
                    self.frozen_weights[n] = self.norm_affine(n).clone()
        self._forwards, self._norms_training, self._sampled_inputs = [], set(), []
        self.split_inputs.stepped()
        self.split_rows.stepped()
        self.validation_graphs.stepped()

    def _settle_forwards(self) -> None:
        """At an observed step's optimizer step: its training forwards are those a backward reached
        (:mod:`~trainwell.doctor.step_forwards`); what was recorded of the others is dropped."""
        kept, dropped = self.step_forwards.settle()
        for forward in kept:
            self.split_inputs.training(forward.x)
        drop_records(self, dropped, kept)

    def norm_affine(self, name: str) -> torch.Tensor:
        """The weight and bias of the BatchNorm layer ``name``, flattened into one tensor."""
        module = dict(self.norms)[name]
        return torch.cat([module.weight.detach().flatten(), module.bias.detach().flatten()])

    def _frozen_norms(self) -> set[str]:
        """Of the BatchNorm layers this step ran in train mode, those whose weight and bias do not train: they
        do not require a gradient, or no optimizer given to the watch holds them."""
        modules = dict(self.norms)
        affine = {n: (modules[n].weight, modules[n].bias) for n in self._norms_training}
        owned = self.held_now() if any(p.requires_grad for ps in affine.values() for p in ps) else set()
        return {n for n, ps in affine.items() if all(not p.requires_grad or id(p) not in owned for p in ps)}

    def _post_step(self, optimizer, args, kwargs) -> None:
        if self._closure_step:  # what the closure's last pass left in .grad, read now
            self._count_forwards()
            if self._armed:
                self._settle_forwards()
                self.max_lrs = [g.get("max_lr") for g in optimizer.param_groups]
                self.steps.append(read_step(self))
        self.opt_steps += 1
        if self._low_before:
            # an update the size of the gradient (SGD) loses what the unchanged elements' gradients hold; an
            # adaptive one (Adam) moves every element by about the rate, so each unchanged element counts once
            adaptive = isinstance(optimizer, ADAPTIVE)
            total = lost = 0.0
            for p, before in self._low_before:
                g = p.grad.detach().float() if p.grad is not None else torch.zeros(p.shape)
                weight = (g != 0).float() if adaptive else g * g
                total += float(weight.sum())
                lost += float((weight * (p.detach() == before)).sum())
            if total > 0:
                self.low_precision.append((str(self._low_before[0][0].dtype).removeprefix("torch."), lost / total))
            self._low_before = []
        self._disarm()
        if self._observed(self.opt_steps):
            self._arm()

    def validation_seen(self) -> None:
        """Called by ``Watch.validate``: the forwards since the last step were validation forwards. Those run
        without gradients are the validation's when there are any: a training forward may come before them (the
        epoch's leftover micro-batch under gradient accumulation, whose gradient the next ``zero_grad()`` drops)."""
        self.validations += 1
        self.validation_steps.append(len(self.lrs))
        self.unseen_validations += not self._forwards  # another model evaluated (an EMA copy), or a stored loss
        no_grad = [mode for mode, grad, _ in self._forwards if not grad]
        if any(no_grad) and mc_dropout(self._sampled_inputs, [m for _, m in self.norms]):
            self.mc_dropout_validations += 1
        elif any(no_grad or [mode for mode, _, _ in self._forwards]):
            self.train_mode_validations += 1
        self.split_inputs.validated()
        self.split_rows.validated()
        # the forwards with gradients since the last step that no backward reached were the validation's
        drop_records(self, self.step_forwards.unreached(), self.step_forwards.forwards)
        self.validation_graphs.validated(len(self._forwards))
        self._forwards, self._norms_training, self._sampled_inputs = [], set(), []


def _on_backward(out, reached: list[bool]) -> None:
    """Set ``reached[0]`` when a backward pass reaches ``out`` (its first output that requires a gradient)."""
    first = next((t for t in ([out] if isinstance(out, torch.Tensor) else O.leaves(out)) if t.requires_grad), None)
    if first is not None:
        def hook(grad) -> None:
            reached[0] = True
        first.register_hook(hook)


def _cleared(grad: torch.Tensor | None) -> bool:
    """Whether ``.grad`` holds nothing: None (``zero_grad()``'s default) or zeros (``set_to_none=False``)."""
    return grad is None or (not grad.is_sparse and not bool(grad.any()))


def _nonzero(t: torch.Tensor) -> bool:
    return bool((t._values() if t.is_sparse else t).any())
