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

import math
import time
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from trainwell.data.labels import as_class_labels
from trainwell.optim import Schedule
from trainwell.train import trainer_state
from trainwell.train.batches import (
    INPUT_KEYS,
    TARGET_KEYS,
    as_tensor,
    as_tensors,
    is_array,
    is_in_memory,
    loader_generators,
    require_iterable,
    split_batch,
)
from trainwell.train.callbacks import Callback, State
from trainwell.train.learners import LOSSES, ModuleLearner, evaluate, loss_function
from trainwell.train.progress import NullProgress
from trainwell.train.stop_callback import as_callback
from trainwell.train.trainer_state import callback_keys


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _overrides(cb: Callback, hook: str) -> bool:
    return getattr(type(cb), hook) is not getattr(Callback, hook)


class Trainer:
    """Train a learner (or ``model`` with ``optimizer``) for ``epochs`` epochs of shuffled mini-batches.

    Args:
        model: an ``nn.Module`` (then ``optimizer``, ``loss_fn``, ``schedule``, ``penalty`` and ``augment`` build
            its :class:`~trainwell.train.learners.ModuleLearner`) or a learner of M models.
        optimizer: a ``torch.optim.Optimizer`` over the model's parameters; required with an ``nn.Module`` (there is
            no default: :func:`trainwell.optim.build_optimizer` makes one from a name).
        batch_size: rows per step when :meth:`fit` gets tensors; a ``DataLoader`` brings its own (this is then
            ignored).
        batch_keys: ``(input_key, target_key)`` of dict batches whose keys are not among :data:`INPUT_KEYS` /
            :data:`TARGET_KEYS`.
        loss_fn: a name from :data:`LOSSES` or a callable ``(outputs, targets) -> scalar``.
        schedule: a :class:`~trainwell.optim.Schedule` (stepped per batch, per epoch, or on val loss).
        callbacks: :class:`~trainwell.train.callbacks.Callback` objects, called in order with the run's
            :class:`State` (for M = 1 that is the model's state; for a population, metrics are the means over the
            members still training).
        member_callbacks: for a population, one list of callbacks per member, each called with that member's
            own :class:`State` (its history, ``stop``, and ``model`` = the member) before the run's callbacks.
        seed: seeds the data order (its own generator) so runs repeat exactly; a population takes one seed per
            member (each member draws its own batches).
        progress: an object with ``start(total, done)``, ``update(metrics)``, ``stop()``.
        penalty: ``penalty(model) -> scalar`` added to the data loss at every step (L1/L2/activity/L0); the
            epoch metrics then carry ``reg_loss`` beside ``train_loss`` (the data loss).
        augment: ``augment(batch, generator) -> batch`` applied to training batches only, with its own seeded
            generator (saved in checkpoints).
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"`` (CUDA): mixed precision for an ``nn.Module``.

    Raises:
        ValueError: callbacks that need the real module (forward hooks: ``vmap_safe = False``) on a vmapped
            learner, or a seed count that does not match the population.
        TypeError: an ``nn.Module`` without an optimizer.
    """

    def __init__(self, model, optimizer: torch.optim.Optimizer | None = None,
                 loss_fn: str | Callable = "cross_entropy", *, epochs: int, batch_size: int | None = None,
                 schedule: Schedule | None = None, callbacks: Sequence[Callback] = (),
                 member_callbacks: Sequence[Sequence[Callback]] | None = None,
                 device: str | torch.device | None = None, seed: int | Sequence[int] = 0,
                 progress=None, penalty: Callable[[nn.Module], torch.Tensor] | None = None,
                 augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
                 precision: str = "fp32", batch_keys: tuple[str, str] | None = None):
        seeds = [seed] if isinstance(seed, int) else [int(s) for s in seed]
        if isinstance(model, nn.Module) and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"Trainer(model) needs an optimizer over the model's parameters (got "
                            f"{type(optimizer).__name__}): Trainer(model, torch.optim.SGD(model.parameters(), "
                            f"lr=0.01), epochs=...) or trainwell.optim.build_optimizer(model, 'sgd', lr=0.01)")
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs={epochs!r} is not allowed: use an integer >= 1")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size={batch_size!r} is not allowed: use an integer >= 1, or None with a "
                             f"DataLoader (it brings its own)")
        if isinstance(model, nn.Module):
            self.device = torch.device(device) if device is not None else default_device()
            learner = ModuleLearner(model.to(self.device), optimizer, loss_fn, schedule=schedule, penalty=penalty,
                                    augment=augment, aug_seed=seeds[0] + 1, precision=precision)
        else:
            learner = model
            self.device = learner.device
        self.learner = learner
        self.size = learner.size
        self.single = not learner.vmapped  # one module: the run's State is the model's State
        if len(seeds) != self.size:
            raise ValueError(f"seed: {len(seeds)} seeds for {self.size} members; give one seed per member")
        self.epochs = epochs
        self.batch_size = batch_size
        self.batch_keys = batch_keys
        self._loader_rngs: list[torch.Generator] = []  # the current train loader's generators (saved in checkpoints)
        self._pending_loader_rng: list | None = None
        self.callbacks = [as_callback(cb) for cb in callbacks]  # stopping criteria are accepted as callbacks
        self.member_callbacks = [list(c) for c in member_callbacks] if member_callbacks is not None else \
            [[] for _ in range(self.size)]
        if len(self.member_callbacks) != self.size:
            raise ValueError(f"member_callbacks: {len(self.member_callbacks)} lists for {self.size} members")
        if learner.vmapped:
            blocked = [type(cb).__name__ for cbs in (self.callbacks, *self.member_callbacks) for cb in cbs
                       if not getattr(cb, "vmap_safe", True)]
            if blocked:
                raise ValueError(f"callbacks {', '.join(sorted(set(blocked)))} cannot run on a vmapped population "
                                 f"(they need the real module); leave them out or train the members one at a time")
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.progress = progress or NullProgress()
        self.state = State(model=learner.model, optimizer=learner.optimizer, trainer=self, learner=learner)
        if self.single:
            self.members = [self.state]
        else:
            self.members = [State(model=learner.member_model(m), optimizer=None, trainer=self, learner=learner,
                                  member=m) for m in range(self.size)]
        self._resumed = False

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
        """Restore :meth:`checkpoint_state` (and callbacks' states saved beside it); the next fit continues."""
        trainer_state.load_checkpoint_state(self, ckpt)
        self._resumed = True

    # -- the loop ------------------------------------------------------------------------------------------
    def _call(self, hook: str, members: Sequence[int] = ()) -> None:
        for m in members:
            for cb in self.member_callbacks[m]:
                getattr(cb, hook)(self.members[m])
        for cb in self.callbacks:
            getattr(cb, hook)(self.state)

    def _population_metrics(self, epoch: int, rows: dict[int, dict], active: int) -> dict:
        """The run's metrics for a population: means over the members that trained this epoch (finite ones)."""
        out = {"epoch": epoch, "step": self.state.step}
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            values = [r[key] for r in rows.values() if key in r and math.isfinite(r[key])]
            if values:
                out[key] = sum(values) / len(values)
        out.setdefault("train_loss", math.nan)
        out.setdefault("train_acc", 0.0)
        out["members_training"] = active
        out["time"] = next(iter(rows.values()))["time"] if rows else 0.0
        return out

    # -- data ----------------------------------------------------------------------------------------------
    def _targets(self, y: torch.Tensor, what: str) -> torch.Tensor:
        if any(self.loss_fn is f for f in LOSSES.values()):  # class-index losses: int32/uint8 labels are cast
            return as_class_labels(y, f"{what} labels")
        return y

    def _check_inputs(self, x: torch.Tensor, what: str) -> None:
        """Refuse floating inputs of another dtype than the model's (NumPy's float64 against float32 weights)."""
        if not self.single or not x.is_floating_point():
            return
        param = next((p for p in self.learner.model.parameters() if p.is_floating_point()), None)
        if param is not None and param.dtype != x.dtype:
            np_hint = " (NumPy's default)" if x.dtype == torch.float64 else ""
            raise TypeError(f"{what} inputs are {str(x.dtype).removeprefix('torch.')}{np_hint} but the model's "
                            f"parameters are {str(param.dtype).removeprefix('torch.')}: convert the inputs "
                            f"(x.astype(np.float32) or x.float()) or the model (model.to(torch.float64))")

    def _device_batch(self, batch, what: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = split_batch(batch, what, self.batch_keys)
        x, y = as_tensor(x, f"{what} inputs"), as_tensor(y, f"{what} targets")
        return x.to(self.device, non_blocking=True), self._targets(y.to(self.device, non_blocking=True), what)

    def _in_memory(self, data, what: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = as_tensors(data, what, self.batch_keys)
        return x.to(self.device), self._targets(y, what).to(self.device)

    def _evaluate(self, data, what: str) -> tuple[list[float], list[float]]:
        """Per-member mean loss and accuracy on ``data`` (tensors, or a loader iterated once, in eval mode)."""
        if isinstance(data, tuple):  # already on the device
            return self.learner.evaluate(data[0], data[1])
        if not self._iterates:
            x, y = self._in_memory(data, what)
            return self.learner.evaluate(x, y)
        loss, acc = self.learner.evaluate_batches(self._device_batch(b, what) for b in data)
        return loss, acc

    @staticmethod
    def _keras_call(train, val, validation_data):
        """Accept Keras' ``fit(x, y, validation_data=(x_val, y_val))`` beside ``fit((x, y), (x_val, y_val))``."""
        if is_array(train):
            if not is_array(val):
                raise TypeError(f"fit got inputs ({type(train).__name__}) without targets: call "
                                f"fit((x, y), (x_val, y_val)), fit(x, y) or fit(loader)")
            return (train, val), validation_data
        if validation_data is not None:
            if val is not None:
                raise TypeError("fit got both val and validation_data: pass one of them")
            val = validation_data
        return train, val

    def fit(self, train, val=None, validation_data=None) -> State:
        """Train on ``train``; evaluate on ``val`` after every epoch. Returns the run's :class:`State` (for a
        population, :attr:`members` holds each member's); ``state.weights_epoch`` says which epoch's weights the
        model holds at the end (the last trained one unless a callback restored the best).

        Args:
            train: ``(x, y)`` tensors or NumPy arrays (batched with ``batch_size``), or a ``DataLoader`` (any
                re-iterable of ``(x, y)`` or dict batches), iterated afresh every epoch. A vmapped population reads
                a loader once into memory, since its members each draw their own batches. ``train``'s labels may
                be (M, N) for a population: each member's own.
            val: validation data in the same forms (a loader is iterated once per evaluation), or None.
            validation_data: Keras' name for ``val``; also ``fit(x, y, validation_data=...)`` works.

        Raises:
            TypeError: data in none of these forms, inputs without targets, or floating inputs of another dtype
                than the model's.
            ValueError: tensors without a ``batch_size``.
        """
        train, val = self._keras_call(train, val, validation_data)
        loader = None
        if is_in_memory(train) or not self._iterates:
            x, y = self._in_memory(train, "train")
            if self.batch_size is None:
                raise ValueError("Trainer(batch_size=...) is needed to batch tensors (a DataLoader brings its own): "
                                 "use an integer >= 1")
            self._check_inputs(x, "train")
            self._loader_rngs = []
        else:
            require_iterable(train, "train")
            loader = train
            x = y = None
            self._loader_rngs = loader_generators(loader)
            if self._pending_loader_rng is not None:
                for g, saved in zip(self._loader_rngs, self._pending_loader_rng, strict=False):
                    g.set_state(saved)
        self._pending_loader_rng = None
        if val is not None:
            if is_in_memory(val) or not self._iterates:
                val = self._in_memory(val, "val")
                self._check_inputs(val[0], "val")
                if len(val[0]) == 0:
                    val = None
            else:
                require_iterable(val, "val")
        learner, state, members, size = self.learner, self.state, self.members, self.size
        single = self.single
        start = state.epoch + 1 if self._resumed else 0
        state.stop = None
        if single or not self._resumed:
            for s in members:
                s.stop = None
        if not self._resumed:
            self._call("on_fit_start", range(size) if not single else ())
        bs = self.batch_size
        # only callbacks that override on_batch_end are called per step (the hot path)
        batch_callbacks = [cb for cb in self.callbacks if _overrides(cb, "on_batch_end")]
        member_batch = [[cb for cb in cbs if _overrides(cb, "on_batch_end")] for cbs in self.member_callbacks]
        any_member_batch = any(member_batch)
        generators = self.generators
        checked = loader is None  # a loader's first batch is checked for the inputs' dtype

        def batches():
            """(step arguments, rows) for one epoch: the loader's batches, or seeded index batches of tensors."""
            nonlocal checked
            if loader is not None:
                for batch in loader:
                    xb, yb = self._device_batch(batch, "train")
                    if not checked:
                        self._check_inputs(xb, "train")
                        checked = True
                    yield learner.train_batch, (xb, yb), len(yb)
                return
            n = len(x)
            if single:
                perm = torch.randperm(n, generator=generators[0]).to(self.device)
            else:
                perm = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(self.device)  # (M, N)
            for i in range(0, n, bs):
                idx = perm[..., i : i + bs]
                yield learner.train_step, (x, y, idx), idx.shape[-1]

        self.progress.start(self.epochs, done=start)
        try:
            for epoch in range(start, self.epochs):
                active = [m for m in range(size) if members[m].stop is None]
                if not active:  # a population whose members had all stopped (e.g. resumed after its end)
                    state.stop = state.stop or "every member stopped"
                    break
                state.epoch = epoch
                if not single:
                    for m in active:
                        members[m].epoch = epoch
                self._call("on_epoch_start", active if not single else ())
                tic = time.perf_counter()
                learner.start_epoch()
                loss_sum = torch.zeros(size, device=self.device)
                correct = torch.zeros(size, dtype=torch.int64, device=self.device)
                lrs = learner.lrs()
                n = 0
                for step, args, rows in batches():
                    loss, right = step(*args)
                    n += rows
                    state.step += 1
                    loss_sum.add_(loss.detach(), alpha=rows)
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
                    raise ValueError("train: the DataLoader yielded no batches this epoch (an empty dataset, or "
                                     "drop_last=True with fewer rows than batch_size)")
                extras = learner.epoch_metrics(n)
                train_loss = [v / n for v in loss_sum.tolist()]
                train_acc = [c / n for c in correct.tolist()]
                if val is not None:
                    val_loss, val_acc = self._evaluate(val, "val")
                elapsed = time.perf_counter() - tic
                rows = {}
                for m in active:
                    metrics = {"epoch": epoch, "step": state.step, "train_loss": train_loss[m],
                               "train_acc": train_acc[m], "lr": lrs[m], **extras[m]}
                    if val is not None:
                        metrics.update(val_loss=val_loss[m], val_acc=val_acc[m])
                    metrics["time"] = elapsed
                    rows[m] = metrics
                learner.end_epoch({m: r.get("val_loss", r["train_loss"]) for m, r in rows.items()})
                for m, metrics in rows.items():
                    s = members[m]
                    if not math.isfinite(metrics["train_loss"]):
                        s.stop = f"non-finite training loss at epoch {epoch + 1}"
                    s.step, s.metrics = state.step, metrics
                    s.history.append(metrics)
                if single:
                    self._call("on_epoch_end")
                else:
                    for m in active:
                        for cb in self.member_callbacks[m]:
                            cb.on_epoch_end(members[m])
                        if members[m].stop is not None:
                            learner.freeze(m)
                    state.metrics = self._population_metrics(epoch, rows, len(active))
                    state.history.append(state.metrics)
                    if all(s.stop is not None for s in members):
                        state.stop = "every member stopped"
                    self._call("on_epoch_end")
                self.progress.update(state.metrics)
                if state.stop is not None:
                    break
        finally:
            self.progress.stop()
        for s in {id(s): s for s in (state, *members)}.values():
            s.weights_epoch = s.epoch if s.history else None
        self._call("on_fit_end", range(size) if not single else ())
        self._resumed = False
        return state

    # -- after training ------------------------------------------------------------------------------------
    def _one_model(self, what: str) -> None:
        if not self.single:
            raise TypeError(f"Trainer.{what} works on one model; for a population, use "
                            f"trainwell.train.evaluate(learner.member_model(m), x, y) per member")

    def _metrics(self, data, prefix: str, what: str) -> dict[str, float]:
        self._one_model(what)
        if data is None:
            raise TypeError(f"Trainer.{what} needs data: (x, y) tensors or arrays, or a DataLoader")
        if is_in_memory(data):
            data = self._in_memory(data, prefix)
            self._check_inputs(data[0], prefix)
        else:
            require_iterable(data, prefix)
        loss, acc = self._evaluate(data, prefix)
        return {f"{prefix}_loss": loss[0], f"{prefix}_acc": acc[0]}

    def validate(self, data, y=None) -> dict[str, float]:
        """Mean loss and accuracy of the model on ``data`` in eval mode: ``{"val_loss", "val_acc"}``.

        ``data`` is ``(x, y)`` tensors/arrays or a loader; ``validate(x, y)`` works too.
        """
        return self._metrics((data, y) if y is not None else data, "val", "validate")

    def test(self, data, y=None) -> dict[str, float]:
        """As :meth:`validate`, named for the test split: ``{"test_loss", "test_acc"}``."""
        return self._metrics((data, y) if y is not None else data, "test", "test")

    @torch.no_grad()
    def predict(self, data, batch_size: int = 2048) -> torch.Tensor:
        """The model's outputs (logits) for ``data`` in eval mode, concatenated on the CPU.

        Args:
            data: inputs (a tensor or NumPy array, run in chunks of ``batch_size`` rows), or a loader of batches
                (inputs alone, ``(x, y)`` pairs or dicts: the targets are ignored).

        Example:
            >>> import torch
            >>> from torch import nn
            >>> model = nn.Linear(2, 3)
            >>> t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=1, batch_size=4)
            >>> t.predict(torch.zeros(5, 2)).shape
            torch.Size([5, 3])
        """
        self._one_model("predict")
        if is_array(data) or is_in_memory(data):
            x = as_tensor(data if is_array(data) else split_batch(data, "predict", self.batch_keys)[0],
                          "predict inputs")
            chunks: Iterable = (x[i : i + batch_size] for i in range(0, len(x), batch_size))
        else:
            require_iterable(data, "predict")
            chunks = (b if is_array(b) else split_batch(b, "predict", self.batch_keys)[0] for b in data)
        model = self.learner.model
        was_training = model.training
        model.eval()
        try:
            outs = []
            for xb in chunks:
                xb = as_tensor(xb, "predict inputs").to(self.device)
                self._check_inputs(xb, "predict")
                with self.learner.autocast():
                    outs.append(model(xb).cpu())
        finally:
            model.train(was_training)
        return torch.cat(outs) if outs else torch.empty(0)


__all__ = ["INPUT_KEYS", "LOSSES", "TARGET_KEYS", "Trainer", "as_tensor", "as_tensors", "callback_keys",
           "default_device", "evaluate", "is_in_memory", "loss_function", "split_batch"]
