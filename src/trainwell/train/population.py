"""The population learner: M models of one architecture trained together in one batched computation.

The members' parameters are stacked (``torch.func.stack_module_state``) and one forward/backward runs all of
them at once: a plain MLP as batched GEMMs (:mod:`trainwell.train.population_mlp`; members that draw the same
batches share the input, and their first layer is one wide GEMM), any other model with ``torch.func.vmap`` over
``functional_call``. Each member keeps its own initialization, data
order (the loop's per-member generators), learning rate and its schedule, weight decay and labels (e.g. its own
label-noise draw). Different MLP widths share the widest architecture: a narrower member's weights sit in the
top-left block and the rest stay exactly zero, since act(0) = 0 units get zero gradients (ReLU, tanh, leaky
ReLU, linear).

The per-member optimizers and learning-rate schedules are in :mod:`trainwell.train.member_optim`. A frozen member
(it stopped) keeps its parameters, optimizer state and step count unchanged.

The loop is :class:`~trainwell.train.trainer.Trainer`; this module only supplies the learner.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from trainwell.errors import TrainwellError
from trainwell.optim import Schedule, plain_sgd_momentum
from trainwell.regularize import penalized_parameters
from trainwell.train.batches import take_rows
from trainwell.train.devices import as_device
from trainwell.train.input_checks import integer_inputs_hint
from trainwell.train.learners import eval_rows, loss_function, predicted_classes
from trainwell.train.losses import class_scores
from trainwell.train.member_optim import PopulationOptimizer, check_hyperparameters
from trainwell.train.member_schedules import MemberSchedules
from trainwell.train.member_states import check_member_states
from trainwell.train.member_widths import embed_state, narrow_state, refuse_padding_that_trains
from trainwell.train.population_data import PopulationDataChecks
from trainwell.train.population_mlp import mlp_cross_entropy_step, mlp_forward, mlp_plan, written_backward
from trainwell.train.step_graph import CapturedStep

_NO_BATCHING_RULE = "There is a performance drop because we have not yet"  # torch's warning, once per op


def _argmax_classes(out: torch.Tensor) -> torch.Tensor:
    """The predicted class of (M, B, C) outputs, as a separate fit predicts it (:func:`predicted_classes`: ties to
    the first maximum). On the batched-GEMM forward's transposed view of (M, C, B) memory this reads the strided
    class axis directly, 1.6-1.8x faster than a contiguous copy and an ``argmax`` (64 x 100 x 10: 336 -> 205 us;
    an ``argmax`` on the strided view itself is 3x slower than the copy)."""
    return predicted_classes(out, dim=2)


class MemberView:
    """Member ``m`` of a population seen as a module (parameters, state dict), for per-member callbacks such as
    the stopping criteria (weight change, best-weight restore)."""

    def __init__(self, learner: PopulationLearner, member: int):
        self.learner, self.member = learner, member
        self._views: dict[str, torch.Tensor] | None = None

    def parameters(self):
        return [p[self.member] for p in self.learner.params.values()]

    def named_parameters(self):
        return [(k, p[self.member]) for k, p in self.learner.params.items()]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Views of the member's slices of the stacked tensors (made once: those tensors are updated in place for
        the whole fit, resumes included)."""
        if self._views is None:
            m = self.member
            self._views = {**{k: v[m].detach() for k, v in self.learner.params.items()},
                           **{k: v[m] for k, v in self.learner.buffers.items()}}
        return dict(self._views)

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in {**self.learner.params, **self.learner.buffers}.items():
            v[self.member].copy_(state[k])


class PopulationLearner(PopulationDataChecks):
    """``len(states)`` copies of ``model``'s architecture trained together, member m starting from ``states[m]``.

    Args:
        model: the (widest) architecture; must have no BatchNorm (its running statistics cannot be vmapped).
        states: one state dict per member (see :func:`embed_state` for narrower MLPs).
        optimizer: "sgd", "momentum", "rmsprop" or "adam", with per-member ``lrs`` and ``weight_decays``
            (``alpha`` and ``rmsprop_momentum`` are RMSprop's, as in :func:`trainwell.optim.build_optimizer`).
            ``momentum`` (default 0.9) and ``nesterov`` are optimizer="momentum"'s; given to plain "sgd" (as
            torch's ``SGD(momentum=0.9)`` takes them) they are refused, as ``build_optimizer`` refuses them.
        schedule: ``schedule(optimizer) -> Schedule``, the same builder a separate fit uses (None: constant LR);
            ``epochs`` and ``steps_per_epoch`` size its tables.
        loss_fn: a loss name or callable ``(outputs, targets) -> scalar`` (vmapped over members).
        shared_input: whether the members draw the same batches (one data seed, no per-member input noise): then
            a plain MLP's first layer is one wide GEMM for all members. None: found out each step on a CPU (the
            rows drawn are compared), not used on a GPU; True: promised (checked on the first step); False: never.
        layout: "auto" (a plain MLP as batched GEMMs, anything else vmapped) or "vmap" (always vmapped).
        cuda_graph: on a GPU, capture the training step as a CUDA graph after two eager steps and replay it
            (:class:`~trainwell.train.step_graph.CapturedStep`: one launch per step instead of dozens); steps that
            cannot be captured (members stopped, decoupled Adam decay, whose state is replaced each step) stay eager.
            No effect on a CPU.
        own_rows: each member trains on rows of its own (its own data draw, not only its own order): the loop's
            inputs are then (M, N, ...) and its labels (M, N), member m drawing its batches from ``x[m]`` alone.

    Example:
        >>> from torch import nn
        >>> net = nn.Linear(2, 2)
        >>> learner = PopulationLearner(net, [net.state_dict()] * 3, optimizer="sgd", lrs=[0.1, 0.2, 0.3],
        ...                             weight_decays=[0.0] * 3)
        >>> learner.size
        3
    """

    vmapped = True
    iterates_loaders = False  # members draw their own batches from tensors: a loader is read into memory

    def __init__(self, model: nn.Module, states: list[dict], *, optimizer: str, lrs: list[float],
                 weight_decays: list[float], decay: str = "coupled", momentum: float | None = None,
                 nesterov: bool = False,
                 betas=(0.9, 0.999), eps: float = 1e-8, alpha: float = 0.99, rmsprop_momentum: float = 0.0,
                 loss_fn: str | Callable = "cross_entropy",
                 schedule: Callable[[torch.optim.Optimizer], Schedule] | None = None, epochs: int = 1,
                 steps_per_epoch: int = 1, device: str | torch.device = "cpu", shared_input: bool | None = None,
                 layout: str = "auto", cuda_graph: bool = True, own_rows: bool = False):
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise ValueError("population training cannot vmap BatchNorm's running statistics: use layer/group norm "
                             "or train the members one after another")
        first: dict[int, str] = {}
        for name, p in model.named_parameters(remove_duplicate=False):
            if id(p) in first:
                raise ValueError(f"population training cannot stack tied parameters ({name} is {first[id(p)]}: one "
                                 f"Parameter in two modules): train the members one after another")
            first[id(p)] = name
        rnn = next((type(m).__name__ for m in model.modules() if isinstance(m, nn.RNNBase)), None)
        if rnn is not None:
            raise ValueError(f"population training cannot vmap {rnn} (torch.func.vmap has no batching rule for "
                             "recurrent layers): train the members one after another")
        if layout not in ("auto", "vmap"):
            raise ValueError(f"layout {layout!r} is not allowed: use 'auto' (batched GEMMs for a plain MLP) or 'vmap'")
        lrs, weight_decays = (v.tolist() if hasattr(v, "tolist") else v for v in (lrs, weight_decays))  # NumPy
        momentum = plain_sgd_momentum(optimizer, momentum, nesterov, key="optimizer")
        check_hyperparameters(states, lrs, weight_decays, decay=decay, momentum=momentum, nesterov=nesterov,
                               betas=betas, eps=eps, alpha=alpha, rmsprop_momentum=rmsprop_momentum)
        if not len(states) == len(lrs) == len(weight_decays):
            raise ValueError(f"a population needs one state, lr and weight decay per member: got {len(states)}, "
                             f"{len(lrs)}, {len(weight_decays)}")
        check_member_states(model, states)
        self.device = as_device(device)
        members = []
        for state in states:
            m = copy.deepcopy(model)
            m.load_state_dict(state)
            members.append(m.to(self.device))
        params, buffers = stack_module_state(members)
        # every member's parameters live in one flat tensor, parameter by parameter, each a contiguous (M, ...)
        # block: the batched GEMMs read a parameter's stack without a copy
        self.layout, start = [], 0
        for key, v in params.items():
            n = v.numel()
            self.layout.append((key, start, start + n, tuple(v.shape)))
            start += n
        self.flat = torch.cat([v.detach().reshape(-1) for v in params.values()])
        # the trained tensors: one leaf per parameter sharing the flat storage, so that backward writes each
        # gradient where the optimizer reads it (one leaf split into views would concatenate them every step)
        self._flat_views = self._views(self.flat)  # made once: read per member every epoch (its best weights)
        # parameters the model has frozen (requires_grad=False: a pretrained backbone) stay as they are
        frozen = {k for k, p in model.named_parameters() if not p.requires_grad}
        self.leaves = {k: v.detach().requires_grad_(k not in frozen) for k, v in self._flat_views.items()}
        self.buffers = buffers
        self.base = copy.deepcopy(model).to("meta")
        self.plan = mlp_plan(self.base) if layout == "auto" else None
        refuse_padding_that_trains(mlp_plan(self.base), self._flat_views)
        self.own_rows = own_rows  # members never share a batch then: their rows are not the same rows
        self.shared_input, self._shared_checked = (False if own_rows else shared_input), False
        self._labels_checked = self._val_checked = False
        self.size = len(states)
        self.loss_fn = loss_function(loss_fn) if isinstance(loss_fn, str) else loss_fn
        self._named = isinstance(loss_fn, str)  # a named loss reads the class scores, a custom one the whole output
        self._cross_entropy = self.loss_fn is F.cross_entropy  # every member's loss in one call (member_losses)
        # a plain MLP under cross-entropy: its backward written out (the autograd graph's results, bit for bit)
        self._written_backward = self._cross_entropy and written_backward(self.plan) and not frozen
        # rates in the parameters' precision (a float64 population steps at the float64 rates its fits take)
        rate_dtype = torch.float64 if self.flat.dtype == torch.float64 else torch.float32
        lr_t = torch.tensor(lrs, dtype=rate_dtype, device=self.device)
        wd_t = torch.tensor(weight_decays, dtype=rate_dtype, device=self.device)
        # the weights a fit decays (trainwell.optim.param_groups): not biases, normalization scales or gate logits
        weights = {id(p) for p in penalized_parameters(model)}
        decayed = {k for k, p in model.named_parameters() if id(p) in weights}
        self.optimizer = PopulationOptimizer(self.leaves, optimizer, lr_t, wd_t, decay, momentum, nesterov,
                                             tuple(betas), eps, alpha=alpha, rmsprop_momentum=rmsprop_momentum,
                                             decayed=decayed)
        self._schedule_args = (schedule, list(lrs), optimizer,
                               rmsprop_momentum if optimizer == "rmsprop" else momentum, betas)
        self.schedules = MemberSchedules(*self._schedule_args, epochs=epochs, steps_per_epoch=steps_per_epoch,
                                         device=self.device, dtype=rate_dtype)
        self.steps = 0  # optimizer steps taken by the population (the schedules' position)
        self.captured = CapturedStep(self._step) if cuda_graph and self.device.type == "cuda" else None
        self.model = self  # the loop's State.model: the whole population

    def plan_fit(self, epochs: int, steps_per_epoch: int) -> None:
        """Size the schedules' tables for a fit of ``epochs`` epochs of ``steps_per_epoch`` steps (the loop calls
        this before training, after a resume too): a population built with other sizes (its defaults, 1 and 1)
        would hold a step schedule at its last tabulated rate. The tables are a function of the sizes; what a
        checkpoint loaded into them (frozen rates, plateau schedulers) is kept."""
        if (epochs, steps_per_epoch) != (self.schedules.epochs, self.schedules.spe):
            state = self.schedules.state_dict()  # what a resume loaded: frozen rates, plateau schedulers
            self.schedules = MemberSchedules(*self._schedule_args, epochs=epochs, steps_per_epoch=steps_per_epoch,
                                             device=self.device, dtype=self.schedules.dtype)
            self.schedules.load_state_dict(state)

    def _views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        pieces = torch.split(flat, [b - a for _, a, b, _ in self.layout])
        return {key: piece.view(shape) for (key, _, _, shape), piece in zip(self.layout, pieces, strict=True)}

    @property
    def params(self) -> dict[str, torch.Tensor]:
        """Each parameter stacked over members, (M, ...): views into the one flat tensor (not tracked)."""
        return dict(self._flat_views)

    # -- the forward ---------------------------------------------------------------------------------------
    def _forward_one(self, params, buffers, x):
        return functional_call(self.base, (params, buffers), (x,))

    def forward(self, x: torch.Tensor, shared: bool = False, *, what: str = "train") -> torch.Tensor:
        """Outputs (M, B, C): ``x`` is (M, B, ...) per member, or (B, ...) shared by all with ``shared``; ``what``
        names the inputs in an error ("train", "val").

        A plain MLP runs as batched GEMMs (:mod:`trainwell.train.population_mlp`: with a shared input the first
        layer is one wide GEMM); any other model, or ``layout = "vmap"``, through ``vmap``."""
        if self.plan is not None:
            return mlp_forward(self.plan, self.leaves, x, shared)
        try:
            with warnings.catch_warnings():  # torch's note that an op has no batching rule (it loops): not the user's
                warnings.filterwarnings("ignore", message=_NO_BATCHING_RULE)
                return vmap(self._forward_one, in_dims=(0, 0, None if shared else 0), randomness="different")(
                    self.leaves, self.buffers, x)
        except ValueError as e:
            if "must only return Tensors" not in str(e):
                raise
            kind = re.search(r"got type <class '([^']+)'>", str(e))
            raise ValueError("population training needs the model to return a tensor, or a tuple or dict of them "
                             f"(vmap cannot return {kind.group(1).rsplit('.', 1)[-1] if kind else 'this output'}): "
                             "return a tuple or dict, or train the members one after another") from None
        except RuntimeError as e:
            hint = integer_inputs_hint(x, e, what)
            if hint is not None:
                raise TypeError(hint) from None
            if not (str(e).startswith("vmap:") or "Batching rule not implemented" in str(e)):  # torch's own
                raise
            what = str(e).splitlines()[0].split(" Please ")[0].removeprefix("vmap: ").rstrip(".")
            raise ValueError(f"population training cannot vmap this model ({what}): train the members one after "
                             "another") from None

    def _shared_rows(self, idx: torch.Tensor) -> bool:
        """Whether every member draws the same rows this step (one data order): then they share one input batch.
        Checked on every step on a CPU (a few microseconds); on a GPU only with ``shared_input = True`` (checked
        on the first step), since the comparison would wait for the device."""
        if self.size == 1 or self.shared_input is False:
            return self.size == 1
        if self.device.type != "cpu" and (self.shared_input is None or self._shared_checked):
            return bool(self.shared_input)  # a GPU: not used unless promised; a promise is checked once
        same = bool(torch.equal(idx, idx[:1].expand_as(idx)))
        if self.shared_input and not same:
            raise ValueError("shared_input=True, but the members drew different rows: give every member the "
                             "same data seed, or leave shared_input unset")
        self._shared_checked = True
        return same

    # -- the learner contract ------------------------------------------------------------------------------
    def rows(self, x: torch.Tensor) -> int:
        """The training rows each member draws from in ``x``: ``len(x)``, or N of (M, N, ...) with ``own_rows``."""
        return x.shape[1] if self.own_rows else len(x)

    def permutation(self, n: int, generators) -> torch.Tensor:
        """Each member's own order of the ``n`` rows, ``(M, n)``, from its own generator (with ``own_rows``: of
        its own block, ``m * n`` .. ``(m + 1) * n - 1``, of the members' rows laid end to end)."""
        perm = torch.stack([torch.randperm(n, generator=g) for g in generators])
        if self.own_rows:
            perm += torch.arange(self.size).unsqueeze(1) * n
        return perm.to(self.device)

    def run_row(self, epoch: int, step: int, rows: dict[int, dict]) -> dict:
        """The run's metrics: means over the members that trained this epoch (finite values only)."""
        out = {"epoch": epoch, "step": step}
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            values = [r[key] for r in rows.values() if key in r and math.isfinite(r[key])]
            if values:
                out[key] = sum(values) / len(values)
        out.setdefault("train_loss", math.nan)
        out.setdefault("train_acc", 0.0)
        out["members_training"] = len(rows)
        out["time"] = next(iter(rows.values()))["time"] if rows else 0.0
        return out

    def start_epoch(self) -> None:
        self.base.train()

    def lrs(self) -> list[float]:
        return self.schedules.rates(self.steps)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.own_rows:  # the members' rows end to end: (M * N, ...) inputs, (M * N,) labels
            if not self._labels_checked:
                self.check_own_rows(x, y)
            x, y = x.flatten(0, 1), y.reshape(-1)
        if not self._labels_checked:
            self._check_labels(x, y)
            self._labels_checked = True
        shared = self._shared_rows(idx)
        lr, mom = self.schedules.at(self.steps)
        if self.captured is not None and self.optimizer.updates_in_place:
            # x and y stay where they are for the whole fit (by address in the key); the batch's rows and the
            # step's rates are copied into the graph's input buffers
            key = (x.data_ptr(), tuple(x.shape), y.data_ptr(), tuple(y.shape), tuple(idx.shape), shared,
                   mom is None, self.base.training)
            args = (idx, lr) if mom is None else (idx, lr, mom)
            out = self.captured(key, *args, fixed=(x, y, shared))
        else:
            out = self._step(idx, lr, mom, fixed=(x, y, shared))
        self.steps += 1
        return out

    def _step(self, idx: torch.Tensor, lr: torch.Tensor, mom: torch.Tensor | None = None, *,
              fixed: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on the rows ``idx`` at rates ``lr`` (and momenta ``mom``): each member's loss and
        right answers. Only device work (no host synchronization), so that it can be captured as a CUDA graph."""
        x, y, shared = fixed
        xb = take_rows(x, idx[0] if shared else idx)  # (B, ...) for all, or (M, B, ...)
        yb = y.gather(1, idx) if y.dim() == 2 else take_rows(y, idx)  # per-member labels (M, N) or shared (N,)
        if self._written_backward:  # sets every gradient
            losses, out = mlp_cross_entropy_step(self.plan, self.leaves, xb, yb, shared)
        else:
            for p in self.leaves.values():
                p.grad = None
            raw = self.forward(xb, shared=shared)
            out = class_scores(raw)  # a (logits, features) or dict output: its logits for the accuracy
            losses = self.member_losses(out if self._named else raw, yb)  # (M,); a custom loss gets it all
            losses.sum().backward()
        self.optimizer.step(lr, mom)
        return losses.detach(), (_argmax_classes(out.detach()) == yb).sum(dim=1)

    def member_losses(self, out: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """Each member's mean loss (M,) of outputs ``out`` (M, B, C) against labels (M, B), or (B,) shared.

        Cross-entropy is computed for all members in one call, on whichever layout ``out`` is stored in: the
        batched-GEMM forward leaves (M, C, B) memory, where a per-member (vmapped) ``cross_entropy`` reads the
        class axis with stride B (about 6x slower, forward and backward, at 16-64 members on CPU). The values are
        the per-member means of the same per-example terms. Any other loss is vmapped over members."""
        shared_labels = yb.dim() == 1
        if self._cross_entropy:
            m, b = out.shape[0], out.shape[1]
            y = yb.expand(m, b) if shared_labels else yb
            if out.transpose(1, 2).is_contiguous():  # first: a batch of 1 is contiguous both ways (one form)
                return F.cross_entropy(out.transpose(1, 2), y, reduction="none").mean(dim=1)
            if out.is_contiguous():
                return F.cross_entropy(out.reshape(m * b, -1), y.reshape(m * b), reduction="none").view(m, b).mean(1)
        with warnings.catch_warnings():  # torch's note that a loss has no batching rule (it loops): not the user's
            warnings.filterwarnings("ignore", message=_NO_BATCHING_RULE)
            return vmap(self.loss_fn, in_dims=(0, None) if shared_labels else 0)(out, yb)

    def epoch_metrics(self, n: int) -> list[dict]:
        return [{} for _ in range(self.size)]

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None
                 ) -> tuple[list[float], list[float]]:
        """Per-member mean loss and accuracy on shared inputs ``x`` (N, ...) against labels ``y``: (N,) shared by
        all members, or (M, N) each member its own; in chunks of ``batch_size`` rows (default:
        :func:`~trainwell.train.learners.eval_rows` of the device and the members)."""
        batch_size = batch_size or eval_rows(self.device, self.size)
        self.check_label_shape(x, y, "val")
        if not self._val_checked:
            self._check_labels(x, y, "val")
            self._val_checked = True
        self.base.eval()
        total = torch.zeros(self.size, dtype=torch.float64, device=self.device)
        correct = torch.zeros(self.size, dtype=torch.int64, device=self.device)
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size].to(self.device), y[..., i : i + batch_size].to(self.device)
            raw = self.forward(xb, shared=True, what="val")
            out = class_scores(raw)  # (M, B, C)
            total += self.member_losses(out if self._named else raw, yb).double() * yb.shape[-1]
            correct += (_argmax_classes(out) == yb).sum(dim=1)
        self.base.train()
        n = max(len(x), 1)
        return (total / n).tolist(), [c / n for c in correct.tolist()]

    def end_epoch(self, values: dict[int, float]) -> None:
        self.schedules.step_metric(values)

    def scale_lr(self, factor: float, member: int = 0) -> None:
        self.schedules.scale(member, factor, self.steps)

    def freeze(self, member: int) -> None:
        self.optimizer.freeze(member)

    def member_model(self, member: int) -> MemberView:
        return MemberView(self, member)

    def model_state(self) -> dict[str, torch.Tensor]:
        """Every member's weights, stacked ((M, ...) per parameter and buffer): what a run-level
        :class:`~trainwell.train.callbacks.Checkpoint` keeps as the population's best weights."""
        return {**{k: v.detach() for k, v in self.params.items()}, **self.buffers}

    def member_state(self, member: int) -> dict[str, torch.Tensor]:
        """Member ``member``'s parameters and buffers as a plain (wide) state dict."""
        return {k: v.detach().clone() for k, v in MemberView(self, member).state_dict().items()}

    def state_dict(self) -> dict:
        return {"params": {k: v.detach() for k, v in self.params.items()}, "buffers": self.buffers,
                "optimizer": self.optimizer.state_dict(), "schedules": self.schedules.state_dict(),
                "steps": self.steps}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        if "params" not in state:
            raise TrainwellError("not a population's checkpoint (a single model's has no stacked 'params'): load it "
                                 "into a Trainer of that model")
        theirs = state["params"]
        if set(theirs) != set(self.params):
            raise TrainwellError(f"a checkpoint of another architecture: its parameters are {sorted(theirs)}, this "
                                 f"population's {sorted(self.params)}")
        for k, v in self.params.items():
            if theirs[k].shape[0] != v.shape[0]:
                raise TrainwellError(f"a checkpoint of a population of {theirs[k].shape[0]} members: this one has "
                                     f"{v.shape[0]}")
            if theirs[k].shape != v.shape:
                raise TrainwellError(f"a checkpoint of another architecture: {k} is {tuple(theirs[k].shape[1:])} per "
                                     f"member there, {tuple(v.shape[1:])} here")
        for k, v in self.params.items():
            v.copy_(state["params"][k])
        for k, v in self.buffers.items():
            v.copy_(state["buffers"][k])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedules.load_state_dict(state["schedules"])
        self.steps = int(state["steps"])
        if self.captured is not None:
            self.captured.reset()  # the optimizer's state tensors were replaced


__all__ = ["MemberView", "PopulationLearner", "PopulationOptimizer", "embed_state", "narrow_state"]
