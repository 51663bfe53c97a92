"""The one fit loop: a :class:`Trainer` drives a *learner* (:mod:`trainwell.train.learners`) of M models.

M = 1 is an ordinary ``nn.Module`` (pass the model and its optimizer, as in any PyTorch loop); M > 1 is a vmapped
population (:class:`~trainwell.train.population.PopulationLearner`) whose members each have their own data order,
metrics, history, stopping decision and callbacks. Everything else - shuffling, metric accumulation, validation,
the non-finite guard, callbacks, checkpoints and exact resume - exists once, here.

Data comes in the forms PyTorch users already hold:

- ``(x, y)`` tensors (or NumPy arrays, converted with :func:`torch.as_tensor`'s dtype rules: float64 stays
  float64, so a float32 model asks for ``x.astype(np.float32)`` instead of casting silently): batches are drawn by
  indexing the tensors on the device with a seeded permutation of ``batch_size`` rows (no per-sample overhead);
- a ``DataLoader`` (or any re-iterable of ``(x, y)`` or ``{"x": ..., "y": ...}`` batches) is iterated afresh
  every epoch, as a hand-written loop would: its batch size, sampler/shuffling, workers, collate function and any
  random augmentation in ``__getitem__`` are the loader's own. ``batch_size`` is then not needed.

Training loss and accuracy are accumulated from the forward passes already made, so an epoch costs one pass over
the training data plus one over the validation data. Epoch numbers in records and ``State.epoch`` are 0-based
(as indices into ``history``); every message a user reads counts epochs from 1.

Resuming from a checkpoint continues exactly when the loader's randomness comes from torch: torch's global RNG
(a shuffling ``DataLoader`` without ``generator=``, and ``torch.rand`` in ``__getitem__`` with ``num_workers=0``)
and a loader's own ``generator=`` are saved in checkpoints. Randomness from NumPy's or Python's ``random`` module
inside a dataset is not saved, so such a run resumes with different draws.

Example:
    >>> import torch
    >>> from torch import nn
    >>> x, y = torch.randn(64, 2), torch.randint(0, 2, (64,))
    >>> model = nn.Linear(2, 2)
    >>> t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=2, batch_size=16)
    >>> len(t.fit((x, y)).history)
    2
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=2)  # the loader brings its batch size
    >>> len(t.fit(DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)).history)
    2
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from trainwell.durability import synced_together
from trainwell.optim import Schedule
from trainwell.train import trainer_state
from trainwell.train.batches import (
    INPUT_KEYS,
    TARGET_KEYS,
    UNREAD_KEY_ERRORS,
    as_tensor,
    as_tensors,
    check_batch_keys,
    is_in_memory,
    split_batch,
    unread_keys,
    unread_keys_message,
)
from trainwell.train.callbacks import Callback, State
from trainwell.train.devices import as_device, default_device
from trainwell.train.learners import LOSSES, ModuleLearner, evaluate, loss_function
from trainwell.train.progress import NullProgress
from trainwell.train.stop_callback import as_callbacks
from trainwell.train.trainer_io import TrainerIO, nonfinite_data_note
from trainwell.train.trainer_state import callback_keys


def _overrides(cb: Callback, hook: str) -> bool:
    return getattr(type(cb), hook) is not getattr(Callback, hook)


def _check_loop(epochs, batch_size, optimizer=False) -> None:
    if optimizer is not False and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"Trainer(model) needs an optimizer over the model's parameters (got "
                        f"{type(optimizer).__name__}): Trainer(model, torch.optim.SGD(model.parameters(), "
                        f"lr=0.01), epochs=...) or trainwell.optim.build_optimizer(model, 'sgd', lr=0.01)")
    if epochs is None:
        raise TypeError("Trainer needs epochs=: the number of passes over the training data, e.g. "
                        "Trainer(model, optimizer, epochs=10)")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs={epochs!r} is not allowed: use an integer >= 1")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size={batch_size!r} is not allowed: use an integer >= 1, or None with a "
                         f"DataLoader (it brings its own)")


def module_learner(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: str | Callable = "cross_entropy", *,
                   device: str | torch.device | None = None, aug_seed: int = 1, **kwargs) -> ModuleLearner:
    """A plain module's learner, the module moved to ``device`` (default: CUDA when available; a device this
    machine does not have is refused in one line, :func:`~trainwell.train.devices.as_device`)."""
    where = as_device(device)
    learner = ModuleLearner(model.to(where), optimizer, loss_fn, aug_seed=aug_seed, **kwargs)
    learner.device = where
    return learner


def _naming_unread_keys(step: Callable, input_key: str, unread: list[str]) -> Callable:
    """``step``, whose forward failing on a dict batch's input tensor is told in one line that names the batch's
    other keys, which the model was not called with (a model written for the whole dict)."""
    if not unread:
        return step

    def first_step(*args):
        try:
            return step(*args)
        except UNREAD_KEY_ERRORS as e:
            raise TypeError(unread_keys_message(input_key, unread, e)) from e

    return first_step


def _restores(callbacks) -> bool:
    """Whether one of ``callbacks`` (as :func:`as_callback` made them) restores the best weights at the end."""
    return any(getattr(cb, "early_stopping", None) is not None and getattr(cb, "restore_best", False)
               for cb in callbacks)


def _check_learner_arguments(learner, *, device, **given) -> None:
    """Refuse the arguments that build a plain module's learner when a learner is given (it brings its own):
    they would be silently ignored (a population takes its loss and schedule in ``PopulationLearner(...)``)."""
    defaults = {"loss_fn": "cross_entropy", "precision": "fp32"}
    named = [k for k, v in given.items() if v is not None and not (k in defaults and v == defaults[k])]
    if device is not None and as_device(device).type != learner.device.type:
        named.append(f"device={str(device)!r} (the learner's parameters are on {learner.device})")
    if named:
        raise ValueError(f"Trainer({type(learner).__name__}(...), {', '.join(named)}): these build a plain "
                         f"nn.Module's learner and would be ignored here; a learner brings its own (a population "
                         f"takes loss_fn, schedule, epochs and steps_per_epoch in PopulationLearner(...), and has "
                         f"no penalty, augmentation or mixed precision)")


class Trainer(TrainerIO):
    """Train a learner (or ``model`` with ``optimizer``) for ``epochs`` epochs of shuffled mini-batches.

    ``Trainer(learner, epochs=...)`` is the constructor: any :class:`~trainwell.train.learners.Learner` of M models.
    ``Trainer(model, optimizer, ...)`` (or :meth:`for_module`) is the convenience for a plain module. :meth:`fit`
    runs in steps, one method each: the data (:meth:`_train_data`), the start (:meth:`_start_fit`), each epoch
    (:meth:`_epoch`: :meth:`_train_epoch`, :meth:`_rows`, :meth:`_end_epoch`) and the end (:meth:`_end_fit`); what
    differs between one model and a population is the learner's (``permutation``, ``run_row``).

    Args:
        learner: a learner of M models, or an ``nn.Module`` (then ``optimizer``, ``loss_fn``, ``schedule``,
            ``penalty`` and ``augment`` build its :class:`~trainwell.train.learners.ModuleLearner`).
        optimizer: a ``torch.optim.Optimizer`` over the model's parameters; required with an ``nn.Module`` (there is
            no default: :func:`trainwell.optim.build_optimizer` makes one from a name).
        batch_size: rows per step when :meth:`fit` gets tensors; a ``DataLoader`` brings its own (this is then
            ignored).
        batch_keys: ``(input_key, target_key)`` of dict batches whose keys are not among :data:`INPUT_KEYS` /
            :data:`TARGET_KEYS`.
        loss_fn: a name from :data:`LOSSES` or a callable ``(outputs, targets) -> scalar``.
        schedule: a :class:`~trainwell.optim.Schedule` (stepped per batch, per epoch, or on val loss), or a torch LR
            scheduler (``ReduceLROnPlateau`` steps on the validation loss, ``OneCycleLR``/``CyclicLR`` per batch,
            any other per epoch: :func:`~trainwell.train.learners.as_schedule`).
        callbacks: :class:`~trainwell.train.callbacks.Callback` objects, called in order with the run's
            :class:`State` (for M = 1 that is the model's state; for a population, metrics are the means over the
            members still training).
        member_callbacks: for a population, one list of callbacks per member, each called with that member's
            own :class:`State` (its history, ``stop``, and ``model`` = the member) before the run's callbacks.
        seed: seeds the data order (its own generator) so runs repeat exactly; a population takes one seed per
            member (each member draws its own batches). Left out, it is 0 for a model and for every member (each
            member draws the batches a model's fit with the default draws).
        progress: an object with ``start(total, done)``, ``update(metrics)``, ``stop()``.
        penalty: ``penalty(model) -> scalar`` added to the data loss at every step (L1/L2/activity/L0); the
            epoch metrics then carry ``reg_loss`` beside ``train_loss`` (the data loss).
        augment: ``augment(batch, generator) -> batch`` applied to training batches only, with its own seeded
            generator (saved in checkpoints).
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"`` (CUDA): mixed precision for an ``nn.Module``.

    Raises:
        ValueError: callbacks that need the real module (forward hooks: ``vmap_safe = False``) on a vmapped
            learner, a seed count that does not match the population, or a ``device`` this machine does not have
            (``device="cuda"`` without CUDA: the message lists the devices there are).
        TypeError: an ``nn.Module`` without an optimizer.
    """

    def __init__(self, learner, optimizer: torch.optim.Optimizer | None = None,
                 loss_fn: str | Callable = "cross_entropy", *, epochs: int | None = None,
                 batch_size: int | None = None,
                 schedule: Schedule | None = None, callbacks: Sequence[Callback] = (),
                 member_callbacks: Sequence[Sequence[Callback]] | None = None,
                 device: str | torch.device | None = None, seed: int | Sequence[int] | None = None,
                 progress=None, penalty: Callable[[nn.Module], torch.Tensor] | None = None,
                 augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
                 precision: str = "fp32", batch_keys: tuple[str, str] | None = None):
        seeds = None if seed is None else [seed] if isinstance(seed, int) else [int(s) for s in seed]
        if isinstance(learner, nn.Module):  # the convenience: a plain module and its optimizer
            _check_loop(epochs, batch_size, optimizer)
            learner = module_learner(learner, optimizer, loss_fn, device=device, schedule=schedule, penalty=penalty,
                                     augment=augment, aug_seed=(seeds or [0])[0] + 1, precision=precision)
        else:
            _check_loop(epochs, batch_size)
            _check_learner_arguments(learner, optimizer=optimizer, loss_fn=loss_fn, schedule=schedule,
                                     penalty=penalty, augment=augment, precision=precision, device=device)
        self.learner = learner
        self.device = learner.device
        self.size = learner.size
        self.single = not learner.vmapped  # one module: the run's State is the model's State
        seeds = [0] * self.size if seeds is None else seeds
        if len(seeds) != self.size:
            raise ValueError(f"seed: {len(seeds)} seeds for {self.size} members; give one seed per member")
        self.epochs, self.batch_size, self.batch_keys = epochs, batch_size, check_batch_keys(batch_keys)
        self._loader_rngs: list[torch.Generator] = []  # the current train loader's generators (saved in checkpoints)
        self._pending_loader_rng: list | None = None
        self.callbacks = as_callbacks(callbacks)  # stopping criteria are accepted as callbacks
        self.member_callbacks = [as_callbacks(c, f"member_callbacks[{m}]") for m, c in enumerate(member_callbacks)] \
            if member_callbacks is not None else [[] for _ in range(self.size)]
        if len(self.member_callbacks) != self.size:
            raise ValueError(f"member_callbacks: {len(self.member_callbacks)} lists for {self.size} members")
        if learner.vmapped and _restores(self.callbacks) and any(_restores(c) for c in self.member_callbacks):
            raise ValueError("restore_best_weights is set for the run (callbacks) and for members (member_callbacks): "
                             "the run's restore, at its end, would undo each member's own; set it on one of them")
        if learner.vmapped:
            blocked = [type(cb).__name__ for cbs in (self.callbacks, *self.member_callbacks) for cb in cbs
                       if not getattr(cb, "vmap_safe", True)]
            if blocked:
                raise ValueError(f"callbacks {', '.join(sorted(set(blocked)))} cannot run on a vmapped population "
                                 f"(they need the real module); leave them out or train the members one at a time")
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.progress = progress or NullProgress()
        self.state = State(model=learner.model, optimizer=learner.optimizer, trainer=self, learner=learner)
        model = learner.model if isinstance(learner.model, nn.Module) else getattr(learner, "base", None)
        self._batchnorm = isinstance(model, nn.Module) and any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        self.members = [self.state] if self.single else \
            [State(model=learner.member_model(m), optimizer=None, trainer=self, learner=learner, member=m)
             for m in range(self.size)]
        self._resumed = False

    @classmethod
    def for_module(cls, model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: str | Callable = "cross_entropy",
                   **kwargs) -> Trainer:
        """The convenience constructor for a plain module: its :class:`~trainwell.train.learners.ModuleLearner`
        is built from ``optimizer``, ``loss_fn`` and the keywords ``device``, ``schedule``, ``penalty``,
        ``augment`` and ``precision``; ``Trainer(model, optimizer, ...)`` does the same."""
        return cls(model, optimizer, loss_fn, **kwargs)

    @property
    def _iterates(self) -> bool:
        """Whether the learner trains on a loader's own batches (one module in one process) rather than on
        tensors it indexes itself (a population, or ranks that shard each global batch)."""
        return bool(getattr(self.learner, "iterates_loaders", False))

    # -- the single-model view (M = 1) ---------------------------------------------------------------------
    model = property(lambda self: self.learner.model)
    optimizer = property(lambda self: self.learner.optimizer)
    schedule = property(lambda self: self.learner.schedule)
    loss_fn = property(lambda self: self.learner.loss_fn)
    generator = property(lambda self: self.generators[0])
    aug_generator = property(lambda self: self.learner.aug_generator)

    # -- checkpointing -------------------------------------------------------------------------------------
    def checkpoint_state(self, copy: bool = False) -> dict:
        """Everything needed to continue exactly (:func:`~trainwell.train.trainer_state.checkpoint_state`)."""
        return trainer_state.checkpoint_state(self, copy)

    def callback_states(self) -> dict:
        """The stateful callbacks' states, saved beside :meth:`checkpoint_state` in a checkpoint."""
        return trainer_state.callback_states(self)

    def load_checkpoint_state(self, ckpt: dict) -> None:
        """Restore :meth:`checkpoint_state` (and callbacks' states saved beside it); the next fit continues
        (:func:`~trainwell.train.trainer_state.load_checkpoint_state`: a run a stopping criterion ended, as
        ``Checkpoint``'s ``last.pt`` records, stays ended)."""
        trainer_state.load_checkpoint_state(self, ckpt)
        self._resumed = True

    # -- the loop ------------------------------------------------------------------------------------------
    def _members_synced(self):
        """A population's members' callbacks write their files (best.pt, each metrics file's sync) at the same
        epochs: made durable together at the end of the hook, before the run's own callbacks (its checkpoint) run
        (:func:`trainwell.durability.synced_together`); one model's are synced as each is written."""
        return contextlib.nullcontext() if self.single else synced_together()

    def _call(self, hook: str, members: Sequence[int] = ()) -> None:
        with self._members_synced():
            for m in members:
                for cb in self.member_callbacks[m]:
                    getattr(cb, hook)(self.members[m])
        for cb in self.callbacks:
            getattr(cb, hook)(self.state)

    def fit(self, train, val=None, validation_data=None) -> State:
        """Train on ``train``; evaluate on ``val`` after every epoch. Returns the run's :class:`State` (for a
        population, :attr:`members` holds each member's); ``state.weights_epoch`` says which epoch's weights the
        model holds at the end (the last trained one unless a callback restored the best).

        Calling ``fit`` again continues the run: ``epochs`` more epochs from where the model, optimizer and
        schedule are, numbered on from the last one (``history`` is appended to, ``step`` counts on, the same
        :class:`State` is returned, a ``Checkpoint`` keeps its best, loggers write on), so ``history[weights_epoch]``
        describes the model; a per-step schedule sized for fewer steps (``OneCycleLR``) is refused before any step.
        After :meth:`load_checkpoint_state` the next call instead continues the saved run up to ``epochs`` in all;
        of a checkpoint whose run a stopping criterion ended (its ``stop``), it returns at once without training,
        ``state.stop`` giving that reason (as ``trainwell fit --resume`` does).

        Args:
            train: ``(x, y)`` tensors or NumPy arrays (batched with ``batch_size``), or a ``DataLoader`` (any
                re-iterable of ``(x, y)`` or dict batches), iterated afresh every epoch. A vmapped population reads
                a loader once into memory, since its members each draw their own batches. ``train``'s labels may
                be (M, N) for a population: each member's own.
            val: validation data in the same forms (a loader is iterated once per evaluation), or None.
            validation_data: Keras' name for ``val``; also ``fit(x, y, validation_data=...)`` works.

        Raises:
            TypeError: data in none of these forms, inputs without targets, floating inputs of another dtype
                than the model's, or multi-input batches ``((x1, x2), y)`` (the model is called with one input
                tensor: the message says how to pack them into one).
            ValueError: tensors without a ``batch_size``, or inputs and targets of different lengths (``got 100
                inputs but 150 targets``), refused before the first step.
        """
        train, val = self._keras_call(train, val, validation_data)
        data, val = self._train_data(train), self._val_data(val)
        continuing = not self._resumed and bool(self.state.history)
        start = self._start_fit()
        end = start + self.epochs if continuing else self.epochs
        if self._resumed and self.state.stop is not None:  # a checkpoint of a run a criterion ended: no epoch
            end = start
        self._check_schedule_room(data, end - start)
        self.progress.start(end, done=start)
        try:
            for epoch in range(start, end):
                if not self._epoch(epoch, data, val):
                    break
        finally:
            self.progress.stop()
        self._end_fit()
        return self.state

    def _check_schedule_room(self, data: tuple, epochs: int) -> None:
        """Refuse a fit whose per-step schedule (``OneCycleLR``, sized in steps) ends before it would: one sized
        for fewer steps, a continuing fit, or a scheduler that an earlier run stepped: torch raises only at the step
        past its end, after the weights have moved."""
        schedule = getattr(self.learner, "schedule", None)
        scheduler = getattr(schedule, "scheduler", None)
        total = getattr(scheduler, "total_steps", None)
        if total is None or getattr(schedule, "interval", None) != "step":
            return
        x, _, loader = data
        try:
            per_epoch = len(loader) if loader is not None else math.ceil(self._member_rows(x) / self.batch_size)
        except TypeError:  # a loader without a length: torch's own error at the end of the schedule stands
            return
        taken = max(self.state.step, getattr(scheduler, "last_epoch", 0))
        if taken + epochs * per_epoch > total:
            raise ValueError(f"fit: the schedule is sized for {total} steps and {taken} have run; "
                             f"{epochs} more epochs take {epochs * per_epoch}: build a new scheduler (or optimizer) "
                             f"for the further training, or fit fewer epochs")

    def _start_fit(self) -> int:
        """The first epoch to train (after a resume: the next one); fresh stop reasons, ``on_fit_start``."""
        state = self.state
        continuing = not self._resumed and bool(state.history)
        if not self._resumed:  # a resumed run keeps the stop its checkpoint restored, a population its members'
            state.stop = None
            for s in self.members:
                s.stop = None
            self._call("on_fit_start", range(self.size))
        # only callbacks that override on_batch_end are called per step (the hot path)
        self._batch_callbacks = [cb for cb in self.callbacks if _overrides(cb, "on_batch_end")]
        self._member_batch = [[cb for cb in cbs if _overrides(cb, "on_batch_end")] for cbs in self.member_callbacks]
        # an earlier call's run goes on (its epochs, steps and history continue); a resumed one after its epoch
        return state.epoch + 1 if self._resumed or continuing else 0

    def _epoch(self, epoch: int, data: tuple, val) -> bool:
        """Train and validate one epoch, then the callbacks; whether training goes on."""
        state, members = self.state, self.members
        active = [m for m in range(self.size) if members[m].stop is None]
        if not active:  # a population whose members had all stopped (e.g. resumed after its end)
            state.stop = state.stop or "every member stopped"
            return False
        state.epoch = epoch
        for m in active:
            members[m].epoch = epoch
        self._call("on_epoch_start", active)
        tic = time.perf_counter()
        self.learner.start_epoch()
        lrs = self.learner.lrs()
        n, loss_sum, correct = self._train_epoch(data, active)
        rows = self._rows(epoch, n, loss_sum, correct, lrs, val, active, tic)
        self._end_epoch(epoch, rows, active, data)
        self.progress.update(state.metrics)
        return state.stop is None

    def _batches(self, x, y, loader):
        """(step, its arguments, rows) for one epoch: the loader's batches, or seeded index batches of tensors."""
        learner = self.learner
        if loader is not None:
            for batch in loader:
                xb, yb = self._device_batch(batch, "train")
                step = learner.train_batch
                if not self._checked:
                    self._check_inputs(xb, "train")
                    self._checked = True
                    step = _naming_unread_keys(step, *unread_keys(batch, self.batch_keys))
                if len(yb) == 1 and self._batchnorm:
                    raise ValueError("the DataLoader gave a batch of 1 example, and BatchNorm cannot train on one "
                                     "(its last batch: the dataset's size % batch_size == 1): use "
                                     "DataLoader(..., drop_last=True), or another batch size")
                yield step, (xb, yb), len(yb)
            return
        n, bs = self._member_rows(x), self.batch_size
        perm = learner.permutation(n, self.generators)  # (N,), or (M, N): each member its own order
        # BatchNorm cannot train on one example: a last batch of 1 (N % batch_size == 1) is left out of the epoch
        # (a different example each epoch), as a DataLoader's drop_last would leave it
        end = n - 1 if n > bs and n % bs == 1 and self._batchnorm else n
        for i in range(0, end, bs):
            idx = perm[..., i : min(i + bs, end)]
            yield learner.train_step, (x, y, idx), idx.shape[-1]

    def _train_epoch(self, data: tuple, active: list[int]) -> tuple[int, torch.Tensor, torch.Tensor]:
        """The optimizer steps of one epoch; the rows seen and each member's summed loss and right answers."""
        state, members = self.state, self.members
        batch_callbacks, member_batch = self._batch_callbacks, self._member_batch
        any_member_batch = any(member_batch)
        loss_sum = torch.zeros(self.size, device=self.device)
        correct = torch.zeros(self.size, dtype=torch.float64, device=self.device)  # accuracy x examples
        n = 0
        for step, args, rows in self._batches(*data):
            loss, right = step(*args)
            n += rows
            state.step += 1
            loss_sum.add_(loss.detach(), alpha=rows)
            if right is not None:  # None: the learner counts them itself (held_right)
                correct.add_(right)
            if batch_callbacks:
                state.batch_loss = loss
                for cb in batch_callbacks:
                    cb.on_batch_end(state)
            if any_member_batch:
                for m in active:
                    members[m].step, members[m].batch_loss = state.step, loss[m]
                    for cb in member_batch[m]:
                        cb.on_batch_end(members[m])
        if n == 0:
            used_up = self.state.epoch > 0 and data[2] is not None and iter(data[2]) is data[2]
            raise ValueError("train: the DataLoader yielded no batches this epoch (" + (
                "a one-shot iterator, such as a generator, is used up after the first epoch: pass a DataLoader or a "
                "list of batches, which can be read again every epoch" if used_up else
                "an empty dataset, or drop_last=True with fewer rows than batch_size") + ")")
        return n, loss_sum, correct

    def _rows(self, epoch: int, n: int, loss_sum: torch.Tensor, correct: torch.Tensor, lrs: list[float], val,
              active: list[int], tic: float) -> dict[int, dict]:
        """Each training member's metrics row for this epoch (training sums, validation, learning rate, time)."""
        extras = self.learner.epoch_metrics(n)
        train_loss = [v / n for v in loss_sum.tolist()]
        if hasattr(self.learner, "held_right"):
            correct = correct + torch.tensor(self.learner.held_right(), dtype=correct.dtype, device=correct.device)
        labelled = self.learner.labelled(n) if hasattr(self.learner, "labelled") else [n] * self.size
        train_acc = [c / d if d else math.nan for c, d in zip(correct.tolist(), labelled, strict=True)]
        if val is not None:
            val_loss, val_acc = self._evaluate(val, "val")
        elapsed = time.perf_counter() - tic
        rows = {}
        for m in active:
            metrics = {"epoch": epoch, "step": self.state.step, "train_loss": train_loss[m],
                       "train_acc": train_acc[m], "lr": lrs[m], **extras[m]}
            if val is not None:
                metrics.update(val_loss=val_loss[m], val_acc=val_acc[m])
            metrics["time"] = elapsed
            rows[m] = metrics
        return rows

    def _end_epoch(self, epoch: int, rows: dict[int, dict], active: list[int], data: tuple = (None,) * 3) -> None:
        """Epoch-wise schedules, the non-finite guard, each member's history and callbacks (a stopped member is
        frozen), the run's own row (a population's means), then the run's callbacks."""
        state, members, learner = self.state, self.members, self.learner
        learner.end_epoch({m: r.get("val_loss", r["train_loss"]) for m, r in rows.items()})
        for m, metrics in rows.items():
            s = members[m]
            if not math.isfinite(metrics["train_loss"]):
                s.stop = s.failure = (f"non-finite training loss at epoch {epoch + 1}"  # a failed run
                                      + nonfinite_data_note(data[0], data[1]))
            s.step, s.metrics = state.step, metrics
            s.history.append(metrics)
        with self._members_synced():
            for m in active:
                for cb in self.member_callbacks[m]:
                    cb.on_epoch_end(members[m])
                if members[m].stop is not None:
                    learner.freeze(m)
        row = learner.run_row(epoch, state.step, rows)
        if row is not None:  # a population: its own row; for one model the run's row is the model's
            state.metrics = row
            state.history.append(row)
            if all(s.stop is not None for s in members):
                state.stop = "every member stopped"
        self._call("on_epoch_end")

    def _end_fit(self) -> None:
        for s in {id(s): s for s in (self.state, *self.members)}.values():
            s.weights_epoch = s.epoch if s.history else None
        self._call("on_fit_end", range(self.size))
        self._resumed = False

__all__ = ["INPUT_KEYS", "LOSSES", "TARGET_KEYS", "Trainer", "as_tensor", "as_tensors", "callback_keys",
           "default_device", "evaluate", "is_in_memory", "loss_function", "split_batch"]
