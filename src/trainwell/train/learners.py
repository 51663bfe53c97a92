"""Learners: what the one fit loop (:class:`~trainwell.train.trainer.Trainer`) trains.

A learner holds M models (M = 1 for an ordinary ``nn.Module``, M members for a vmapped population) with their
optimizer and learning-rate schedule, and answers a small contract the loop relies on (:class:`Learner`, checked
for every learner by ``tests/train/test_learners.py``):

- ``size``: M; ``vmapped``: whether the models run under ``torch.func.vmap`` (forward hooks cannot run there);
- ``start_epoch()``: put the models in training mode, reset per-epoch sums;
- ``lrs() -> list[float]``: each member's learning rate for the next step;
- ``permutation(n, generators) -> idx``: the epoch's order of the ``n`` training rows, ``(n,)`` for M = 1 and
  ``(M, n)`` for a population (each member its own, from its own generator);
- optionally ``rows(x) -> int``: the rows each model draws from in ``x`` (default ``len(x)``; a population whose
  members train on rows of their own takes (M, N, ...) inputs);
- ``check_inputs(x, what)``: refuse inputs the models cannot take (a float64 array against float32 weights);
- ``train_step(x, y, idx) -> (loss, correct)``: one optimizer step on the rows ``idx`` of ``x`` (``(B,)`` for
  M = 1, ``(M, B)`` for a population: each member its own batch); ``loss`` is the mean batch loss (a scalar for
  M = 1, ``(M,)`` otherwise), ``correct`` the number of right predictions, or None where the learner counts them
  itself and gives the epoch's count in ``held_right()`` (a :class:`ModuleLearner` on a CPU);
- ``epoch_metrics(n) -> list[dict]``: extra per-member epoch metrics (e.g. ``reg_loss``);
- ``evaluate(x, y) -> (loss, acc)``: per-member mean loss and accuracy (lists of M floats), eval mode;
- ``end_epoch(values)``: step epoch-wise schedules (``values[m]``: the monitored loss, for plateau schedules);
- ``scale_lr(factor, member)``: multiply a member's LR by ``factor`` and stop its schedule (stopping criteria's
  "then k more epochs at a lower LR");
- ``freeze(member)``: the member stopped: its parameters and optimizer state no longer change;
- ``run_row(epoch, step, rows) -> dict | None``: the run's own metrics row from the members' rows (None for
  M = 1: the run's row is the model's);
- ``state_dict()`` / ``load_state_dict()``: everything needed to continue exactly.

A learner that ``iterates_loaders`` also takes a DataLoader's batches (``train_batch``, ``evaluate_batches``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.data.labels import as_class_labels
from trainwell.nn.modes import module_modes, restore_modes
from trainwell.optim import Schedule
from trainwell.train.accuracy import HeldCounts, accuracy_kind, counts
from trainwell.train.batches import take_rows
from trainwell.train.first_layer import first_layer_hint
from trainwell.train.input_checks import (  # noqa: F401 (importable from here)
    check_input_dtype,
    integer_inputs_hint,
    integer_inputs_message,
)
from trainwell.train.losses import (  # noqa: F401 - importable from here as before
    CLASS_INDEX_LOSSES,
    LOSSES,
    check_labels,
    class_scores,
    loss_function,
    named_loss,
)


def predicted_classes(out: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """The index of the largest output along ``dim`` (the class axis): ``out.argmax(dim)``, ties to the first
    maximum and NaN counted as the maximum, as ``argmax`` does. Computed as ``out.max(dim).indices``, which gives
    the same indices 1.5-1.8x faster on a CPU from a few hundred rows on (2822 x 97: 0.68 -> 0.41 ms), also along
    a strided class axis; ``argmax`` is ~1 us faster on a 100 x 10 batch."""
    return out.max(dim=dim).indices


def as_schedule(schedule, optimizer) -> Schedule:
    """``schedule`` as a :class:`~trainwell.optim.Schedule`: one as it is; a torch LR scheduler on ``optimizer``
    stepped as torch's own examples step it: ``ReduceLROnPlateau`` on the validation loss, ``OneCycleLR`` and
    ``CyclicLR`` after every batch, any other after every epoch; None: no schedule.

    Raises:
        TypeError: ``schedule`` is neither.
        ValueError: a torch scheduler of another optimizer.
    """
    if schedule is None:
        return Schedule(None, "none")
    if isinstance(schedule, Schedule):
        return schedule
    from torch.optim import lr_scheduler

    if not isinstance(schedule, (lr_scheduler.LRScheduler, lr_scheduler.ReduceLROnPlateau)):
        raise TypeError(f"schedule is a {type(schedule).__name__}: pass a torch LR scheduler or a "
                        f"trainwell.optim.Schedule(scheduler, 'step' | 'epoch' | 'metric')")
    if getattr(schedule, "optimizer", optimizer) is not optimizer:
        raise ValueError("schedule: the scheduler was built on another optimizer than the trainer's")
    if isinstance(schedule, lr_scheduler.ReduceLROnPlateau):
        return Schedule(schedule, "metric")
    per_batch = isinstance(schedule, (lr_scheduler.OneCycleLR, lr_scheduler.CyclicLR))
    return Schedule(schedule, "step" if per_batch else "epoch")


def _check_optimizer(model: nn.Module, optimizer) -> None:
    """Refuse an optimizer that holds none of ``model``'s parameters (built on another copy: it would train
    nothing)."""
    groups = getattr(optimizer, "param_groups", None)
    if not groups:
        return
    held = {id(p) for g in groups for p in g["params"]}
    if held and not held & {id(p) for p in model.parameters()}:
        raise ValueError("the optimizer holds none of the model's parameters (was it built on another copy of the "
                         "model, or before the model was re-created?): build it on model.parameters() of the model "
                         "you train")


#: rows per forward where a caller gives none: on a CPU the chunk's activations should stay near the core's cache
#: (a 2048-row chunk of the default CNN is ~21 MB per layer and evaluates ~1.4-1.8x slower per row than 256 rows,
#: benchmarks/RESULTS.md section 52); an accelerator wants wide chunks
CPU_EVAL_ROWS, DEVICE_EVAL_ROWS = 256, 2048


def eval_rows(device: torch.device | str, members: int = 1) -> int:
    """How many rows to run per forward when evaluating on ``device``; on a CPU, ``members`` vmapped models share a
    chunk (each its own activations), so past 16 members the chunk shrinks with their number, to 64 rows at least."""
    if torch.device(device).type != "cpu":
        return DEVICE_EVAL_ROWS
    return max(64, min(CPU_EVAL_ROWS, CPU_EVAL_ROWS * 16 // max(members, 1)))


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable = F.cross_entropy,
             batch_size: int | None = None) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``(x, y)`` in eval mode (each module's mode is restored afterwards:
    a BatchNorm the user froze with ``eval()`` stays frozen), in chunks of ``batch_size`` rows (default:
    :func:`eval_rows` of ``x``'s device)."""
    batch_size = batch_size or eval_rows(x.device)
    if named_loss(loss_fn):
        y = as_class_labels(y, "y")
    modes = module_modes(model)
    model.eval()
    try:
        total, correct, labelled = _evaluate_chunks(model, x, y, loss_fn, batch_size, named_loss(loss_fn))
    finally:
        restore_modes(modes)
    n = max(len(x), 1)
    return {"loss": total / n, "acc": correct / labelled if labelled else math.nan}


def _evaluate_chunks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable, batch_size: int,
                     named: bool) -> tuple[float, float, float]:
    """(summed loss, right answers, labelled examples) over ``batch_size`` chunks of ``(x, y)``."""
    total, correct, labelled = 0.0, 0.0, 0.0
    kind = None
    for i in range(0, len(x), batch_size):
        out = model(x[i : i + batch_size])
        yb = y[i : i + batch_size]
        if i == 0:  # labels a class-index loss would fail on deep inside torch, named as in training
            _check_labels_of(out, yb, loss_fn)
            kind = accuracy_kind(class_scores(out), yb, loss_fn)
        total += float(loss_fn(class_scores(out) if named else out, yb)) * len(yb)
        right, count = counts(kind, class_scores(out), yb)
        correct, labelled = correct + float(right), labelled + float(count)
    return total, correct, labelled


def _check_labels_of(out, y: torch.Tensor, loss_fn: Callable) -> None:
    """:func:`check_labels` on the class scores of ``out``; when ``out`` is a structure, the message says which of
    its tensors was read as the scores (the first floating-point one, unless a field is named ``logits``)."""
    scores = class_scores(out)
    try:
        check_labels(scores, y, loss_fn)
    except ValueError as e:
        if isinstance(out, torch.Tensor):
            raise
        raise ValueError(f"{e}; the scores were read from the model's {type(out).__name__} output as its tensor of "
                         f"shape {tuple(scores.shape)}: return the logits first, or in a dict under 'logits'") \
            from None


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_context(precision: str, device: torch.device) -> Callable:
    """``autocast_context(precision, device)()`` is a context that runs its forward passes in ``precision``
    (:func:`torch.autocast`: matmuls and convolutions in the low-precision type, reductions and losses in fp32), or
    does nothing for fp32.

    Raises:
        ValueError: an unknown precision, or fp16 off CUDA (use bf16 on a CPU).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision = {precision!r} (train.precision in a config) is not allowed: use one of "
                         f"{', '.join(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext
    device = torch.device(device)
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision = 'fp16' (train.precision in a config) needs a CUDA device (this run is on "
                         f"{device.type}): use 'bf16' on a CPU")
    return lambda: torch.autocast(device.type, dtype=PRECISIONS[precision])


@runtime_checkable
class Learner(Protocol):
    """What :class:`~trainwell.train.trainer.Trainer` trains: M models behind one interface (see the module's
    docstring for each method). Implemented by :class:`ModuleLearner` (M = 1),
    :class:`~trainwell.train.population.PopulationLearner` (a vmapped population) and
    :class:`~trainwell.train.distributed.DistributedLearner` (one model over torchrun's ranks)."""

    size: int
    vmapped: bool
    iterates_loaders: bool
    device: torch.device
    model: Any
    optimizer: Any
    loss_fn: Callable

    def start_epoch(self) -> None: ...

    def lrs(self) -> list[float]: ...

    def permutation(self, n: int, generators: Sequence[torch.Generator]) -> torch.Tensor: ...

    def check_inputs(self, x: torch.Tensor, what: str) -> None: ...

    def train_step(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ...

    def epoch_metrics(self, n: int) -> list[dict]: ...

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]: ...

    def end_epoch(self, values: dict[int, float]) -> None: ...

    def scale_lr(self, factor: float, member: int = 0) -> None: ...

    def freeze(self, member: int = 0) -> None: ...

    def member_model(self, member: int = 0) -> Any: ...

    def run_row(self, epoch: int, step: int, rows: dict[int, dict]) -> dict | None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class ModuleLearner:
    """One ``nn.Module`` with a torch optimizer (M = 1): the hot path of an ordinary ``fit``.

    Args:
        schedule: a :class:`~trainwell.optim.Schedule` (stepped per batch here, per epoch in :meth:`end_epoch`).
        penalty: ``penalty(model) -> scalar`` added to the data loss at every step; the epoch metrics then carry
            ``reg_loss`` beside ``train_loss`` (the data loss).
        augment: ``augment(batch, generator) -> batch`` for training batches, with its own generator seeded by
            ``aug_seed`` (saved in :meth:`state_dict`).
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``: forward passes (training and validation) under
            :func:`torch.autocast`; fp16 adds a :class:`torch.amp.GradScaler` (saved in :meth:`state_dict`).
    """

    size = 1
    vmapped = False
    iterates_loaders = True  # the trainer may hand it a DataLoader's batches (train_batch, evaluate_batches)

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: str | Callable = "cross_entropy",
                 *, schedule: Schedule | None = None, penalty: Callable[[nn.Module], torch.Tensor] | None = None,
                 augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None, aug_seed: int = 1,
                 precision: str = "fp32"):
        self.model, self.optimizer = model, optimizer
        _check_optimizer(model, optimizer)
        self.loss_fn = loss_function(loss_fn) if isinstance(loss_fn, str) else loss_fn
        self._named = named_loss(self.loss_fn)
        self._labels_checked = False
        self._accuracy: tuple[str, float] | None = None
        self.schedule = as_schedule(schedule, optimizer)
        self.penalty, self.augment = penalty, augment
        self.aug_generator = torch.Generator().manual_seed(aug_seed)
        self._reg_sum: torch.Tensor | None = None
        self.precision = precision
        device = next(model.parameters(), torch.empty(0)).device
        self.device = device
        self.autocast = autocast_context(precision, device)
        # fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range and needs none
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
        # on a CPU the training accuracy is counted a few batches at a time (HeldCounts); on a GPU each batch's
        # count is queued with its step (and a compiled model's CUDA graphs reuse their outputs' memory)
        self._held = HeldCounts() if device.type == "cpu" else None

    def start_epoch(self) -> None:
        # modes the user chose are left as they are (a frozen BatchNorm in eval mode, or model.eval() with the head
        # in train mode); a model wholly in eval mode (model.train() forgotten after validating) is switched
        if not any(m.training for m in self.model.modules()):
            self.model.train()
        if self.penalty is not None:
            self._reg_sum = torch.zeros((), device=next(self.model.parameters()).device)
        self._labels_checked = False  # the targets' form is read again on each epoch's first batch
        self._labelled = 0
        if self._held is not None:
            self._held.reset()

    def lrs(self) -> list[float]:
        return [self.optimizer.param_groups[0]["lr"]]

    def permutation(self, n: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
        return torch.randperm(n, generator=generators[0]).to(self.device)

    def check_inputs(self, x: torch.Tensor, what: str) -> None:
        """Refuse floating inputs of another dtype than the model's (NumPy's float64 against float32 weights)."""
        check_input_dtype(x, next((p for p in self.model.parameters() if p.is_floating_point()), None), what)

    def run_row(self, epoch: int, step: int, rows: dict[int, dict]) -> None:
        return None  # one model: the run's metrics are the model's

    def train_step(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if getattr(self, "_labels_read", None) is not y:  # once per training set: no negative (ignored) label?
            self._labels_read = y
            self._all_labelled = not y.is_floating_point() and not y.is_complex() and bool((y >= 0).all())
        return self.train_batch(take_rows(x, idx), take_rows(y, idx), self._all_labelled, own_targets=True)

    def train_batch(self, xb: torch.Tensor, yb: torch.Tensor, all_labelled: bool = False, *,
                    own_targets: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One optimizer step on the batch ``(xb, yb)`` (a DataLoader's batch, or rows drawn by :meth:`train_step`);
        returns the mean batch loss and the number of right predictions, or None on a CPU, where they are counted
        with the epoch's other batches (:meth:`held_right`). ``all_labelled``: no label in the batch is negative, as
        :meth:`train_step` knows of its whole training set: the accuracy counts them without a pass;
        ``own_targets``: ``yb`` is a tensor of the learner's own (gathered rows), which no loader refills later."""
        if self.augment is not None:
            xb = self.augment(xb, self.aug_generator)
        with self.autocast():
            try:
                out = self.model(xb)
            except RuntimeError as e:  # no cost unless raised
                hint = integer_inputs_hint(xb, e)
                if hint is not None:
                    raise TypeError(hint) from None
                hint = first_layer_hint(self.model, xb) if not self._labels_checked else None
                if hint is None:
                    raise
                raise ValueError(hint) from None
            if not self._labels_checked:  # once: a label torch's loss would meet as an index error
                _check_labels_of(out, yb, self.loss_fn)
                self._labels_checked = True
                self._accuracy = accuracy_kind(class_scores(out), yb, self.loss_fn)
            loss = self.loss_fn(class_scores(out) if self._named else out, yb)
        self.update(loss, len(yb))
        if self._held is not None:
            # a loader may refill one targets tensor batch after batch: the held targets are a copy of its
            self._held.add(self._accuracy, class_scores(out).detach(), yb if own_targets else yb.clone(), all_labelled)
            return loss, None
        right, count = counts(self._accuracy, class_scores(out).detach(), yb, all_labelled)
        self._labelled = self._labelled + count
        return loss, right

    def held_right(self) -> list[float]:
        """The right predictions of the epoch's steps that returned None for them (counted now)."""
        return [float(self._held.totals()[0]) if self._held is not None else 0.0]

    def labelled(self, n: int) -> list[float]:
        """The epoch's labelled examples or positions (the accuracy's denominator; ``n`` examples were seen)."""
        return [float(self._labelled + (self._held.totals()[1] if self._held is not None else 0))]

    def update(self, loss: torch.Tensor, examples: int) -> None:
        """One optimizer step on ``loss`` (plus the penalty, computed in full precision), with loss scaling for
        fp16; then step a per-batch schedule."""
        opt = self.optimizer
        opt.zero_grad(set_to_none=True)
        if self.penalty is not None:
            reg = self.penalty(self.model)
            loss = loss + reg
            self._reg_sum.add_(reg.detach(), alpha=examples)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(opt)  # skipped when the scaled gradients overflowed; the scale then shrinks
            self.scaler.update()
        else:
            loss.backward()
            opt.step()
        if self.schedule.interval == "step":
            self.schedule.scheduler.step()

    def epoch_metrics(self, n: int) -> list[dict]:
        return [{"reg_loss": float(self._reg_sum) / n}] if self.penalty is not None else [{}]

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
        with self.autocast():
            m = evaluate(self.model, x, y, self.loss_fn)
        return [m["loss"]], [m["acc"]]

    @torch.no_grad()
    def evaluate_batches(self, batches) -> tuple[list[float], list[float]]:
        """As :meth:`evaluate`, over an iterable of ``(xb, yb)`` batches (a validation DataLoader), in eval mode."""
        modes = module_modes(self.model)
        self.model.eval()
        total, correct, labelled, n = 0.0, 0.0, 0.0, 0
        kind = None
        try:
            for xb, yb in batches:
                with self.autocast():
                    out = self.model(xb)
                    if n == 0:
                        _check_labels_of(out, yb, self.loss_fn)
                        kind = accuracy_kind(class_scores(out), yb, self.loss_fn)
                    total += float(self.loss_fn(class_scores(out) if self._named else out, yb)) * len(yb)
                right, count = counts(kind, class_scores(out), yb)
                correct, labelled = correct + float(right), labelled + float(count)
                n += len(yb)
        finally:
            restore_modes(modes)
        if n == 0:  # a loss of 0 would read as a perfect epoch to early stopping and best.pt
            raise ValueError("the validation data yielded no examples (an empty DataLoader or dataset): give "
                             "validation data with examples, or none")
        return [total / n], [correct / labelled if labelled else math.nan]

    def end_epoch(self, values: dict[int, float]) -> None:
        if self.schedule.interval == "epoch":
            self.schedule.scheduler.step()
        elif self.schedule.interval == "metric":
            self.schedule.scheduler.step(values[0])

    def scale_lr(self, factor: float, member: int = 0) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] *= factor
        self.schedule.interval = "none"  # the lowered LR must not be overwritten by a schedule

    def freeze(self, member: int = 0) -> None:
        pass  # a single model simply stops training with the loop

    def member_model(self, member: int = 0) -> nn.Module:
        return self.model

    def model_state(self) -> dict:
        """The model's state dict: what :meth:`state_dict` saves under ``"model"``, without building the rest
        (the best-weights copy a checkpoint keeps at every improvement needs only this)."""
        return self.model.state_dict()

    def state_dict(self) -> dict:
        state = {"model": self.model_state(), "optimizer": self.optimizer.state_dict(),
                 "optimizer_class": type(self.optimizer).__name__,
                 "schedule": self.schedule.state_dict(), "aug_generator": self.aug_generator.get_state()}
        if self.scaler is not None:
            state["grad_scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`.

        Raises:
            ValueError: not a trainer's checkpoint (a plain state dict), weights that do not fit the model, or
                another optimizer than the one that saved it.
        """
        if isinstance(state, dict) and "params" in state and "members" in state:
            raise ValueError("a population's checkpoint (its members' weights stacked): resume it with a Trainer of "
                             "the same PopulationLearner; one member's weights are in its member folder's best.pt")
        if not isinstance(state, dict) or "model" not in state or "optimizer" not in state:
            raise ValueError("not a trainer checkpoint (no 'model' and 'optimizer' entries; a plain state_dict? "
                             "load that with model.load_state_dict(torch.load(path)))")
        saved = state.get("optimizer_class")
        groups = state["optimizer"].get("param_groups") or [{}]
        if saved is not None and saved != type(self.optimizer).__name__ or saved is None and \
                set(groups[0]) - {"params"} != set(self.optimizer.param_groups[0]) - {"params"}:
            raise ValueError(f"the checkpoint was saved with another optimizer ({saved or 'other settings'}) than "
                             f"this trainer's {type(self.optimizer).__name__}: resume with the same optimizer")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as e:
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            raise ValueError(f"the checkpoint's weights do not fit this model ({'; '.join(lines[1:3])[:300]}): "
                             f"resume into the architecture that saved it") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if "aug_generator" in state:
            self.aug_generator.set_state(state["aug_generator"])
        if self.scaler is not None and "grad_scaler" in state:
            self.scaler.load_state_dict(state["grad_scaler"])


__all__ = ["LOSSES", "PRECISIONS", "Learner", "ModuleLearner", "autocast_context", "evaluate", "loss_function"]
