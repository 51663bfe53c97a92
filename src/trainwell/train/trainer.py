"""The one fit loop: a :class:`Trainer` drives a *learner* (:mod:`trainwell.train.learners`) of M models.

M = 1 is an ordinary ``nn.Module`` (pass the model and its optimizer, as in any PyTorch loop); M > 1 is a vmapped
population (:class:`~trainwell.train.population.PopulationLearner`) whose members each have their own data order,
metrics, history, stopping decision and callbacks. Everything else - shuffling, metric accumulation, validation,
the non-finite guard, callbacks, checkpoints and exact resume - exists once, here.

Batches are drawn by indexing tensors already on the device with a seeded permutation (no per-sample
DataLoader overhead). Training loss and accuracy are accumulated from the forward passes already made, so an
epoch costs one pass over the training data plus one over the validation data.

Example:
    >>> import torch
    >>> from torch import nn
    >>> x, y = torch.randn(64, 2), torch.randint(0, 2, (64,))
    >>> model = nn.Linear(2, 2)
    >>> t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=2, batch_size=16)
    >>> len(t.fit((x, y)).history)
    2
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from trainwell.data.labels import as_class_labels
from trainwell.optim import Schedule
from trainwell.train.callbacks import Callback, State
from trainwell.train.learners import LOSSES, ModuleLearner, evaluate, loss_function
from trainwell.train.progress import NullProgress
from trainwell.train.stop_callback import as_callback


def _clone(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone(v) for v in obj]
    return obj


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _overrides(cb: Callback, hook: str) -> bool:
    return getattr(type(cb), hook) is not getattr(Callback, hook)


def as_tensors(data, what: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` tensors as they are; any other iterable of ``(x, y)`` batches (a ``DataLoader``, a list of
    pairs) is read once and concatenated into memory. The trainer then draws its own seeded batches of its own
    ``batch_size`` every epoch (the loader's order, batch size and any random transforms are not re-drawn)."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        return data[0], data[1]
    try:
        batches = list(data)
    except TypeError:
        raise TypeError(f"{what}: Trainer.fit takes (x, y) tensors or an iterable of (x, y) batches such as a "
                        f"DataLoader, got {type(data).__name__}") from None
    if not batches or not all(isinstance(b, (tuple, list)) and len(b) >= 2 and isinstance(b[0], torch.Tensor)
                              and isinstance(b[1], torch.Tensor) for b in batches):
        raise TypeError(f"{what}: each batch must be an (x, y) pair of tensors, as a DataLoader over a "
                        f"TensorDataset yields; got {type(batches[0]).__name__ if batches else 'no batches'}")
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


class Trainer:
    """Train a learner (or ``model`` with ``optimizer``) for ``epochs`` epochs of shuffled mini-batches.

    Args:
        model: an ``nn.Module`` (then ``optimizer``, ``loss_fn``, ``schedule``, ``penalty`` and ``augment`` build
            its :class:`~trainwell.train.learners.ModuleLearner`) or a learner of M models.
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
    """

    def __init__(self, model, optimizer: torch.optim.Optimizer | None = None,
                 loss_fn: str | Callable = "cross_entropy", *, epochs: int, batch_size: int,
                 schedule: Schedule | None = None, callbacks: Sequence[Callback] = (),
                 member_callbacks: Sequence[Sequence[Callback]] | None = None,
                 device: str | torch.device | None = None, seed: int | Sequence[int] = 0,
                 progress=None, penalty: Callable[[nn.Module], torch.Tensor] | None = None,
                 augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
                 precision: str = "fp32"):
        seeds = [seed] if isinstance(seed, int) else [int(s) for s in seed]
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

    # -- the single-model view (M = 1) ---------------------------------------------------------------------
    model = property(lambda self: self.learner.model)
    optimizer = property(lambda self: self.learner.optimizer)
    schedule = property(lambda self: self.learner.schedule)
    loss_fn = property(lambda self: self.learner.loss_fn)
    generator = property(lambda self: self.generators[0])
    aug_generator = property(lambda self: self.learner.aug_generator)

    # -- checkpointing -------------------------------------------------------------------------------------
    def checkpoint_state(self, copy: bool = False) -> dict:
        """Everything needed to continue exactly: weights, optimizer, schedule, RNGs, position, history.

        With ``copy=True`` the tensors are cloned, so the snapshot survives further training. A population adds
        each member's history and stop reason (``members``).
        """
        state = {
            **self.learner.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "epoch": self.state.epoch,
            "step": self.state.step,
            "history": list(self.state.history),
        }
        if self.single:
            state["generator"] = self.generators[0].get_state()
        else:
            state["generators"] = [g.get_state() for g in self.generators]
            state["members"] = [{"epoch": s.epoch, "step": s.step, "history": list(s.history), "stop": s.stop}
                                for s in self.members]
        return _clone(state) if copy else state

    def callback_states(self) -> dict:
        """The stateful callbacks' states, saved beside :meth:`checkpoint_state` in a checkpoint."""
        out = {"callbacks": {type(cb).__name__: cb.state_dict() for cb in self.callbacks}}
        if not self.single:
            out["member_callbacks"] = [{type(cb).__name__: cb.state_dict() for cb in cbs}
                                       for cbs in self.member_callbacks]
        return out

    def load_checkpoint_state(self, ckpt: dict) -> None:
        """Restore :meth:`checkpoint_state` (and callbacks' states saved beside it); the next fit continues."""
        self.learner.load_state_dict(ckpt)
        if self.single:
            self.generators[0].set_state(ckpt["generator"])
        else:
            for g, s in zip(self.generators, ckpt["generators"], strict=True):
                g.set_state(s)
            for st, saved in zip(self.members, ckpt["members"], strict=True):
                st.epoch, st.step, st.stop = saved["epoch"], saved["step"], saved["stop"]
                st.history = list(saved["history"])
                st.metrics = st.history[-1] if st.history else {}
        torch.set_rng_state(ckpt["torch_rng"])
        if ckpt.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
        self.state.epoch = ckpt["epoch"]
        self.state.step = ckpt["step"]
        self.state.history = list(ckpt["history"])
        self.state.metrics = self.state.history[-1] if self.state.history else {}
        saved = ckpt.get("callbacks", {})
        for cb in self.callbacks:
            if type(cb).__name__ in saved:
                cb.load_state_dict(saved[type(cb).__name__])
        for cbs, saved in zip(self.member_callbacks, ckpt.get("member_callbacks", []), strict=False):
            for cb in cbs:
                if type(cb).__name__ in saved:
                    cb.load_state_dict(saved[type(cb).__name__])
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

    def fit(self, train: tuple[torch.Tensor, torch.Tensor],
            val: tuple[torch.Tensor, torch.Tensor] | None = None) -> State:
        """Train on ``train``; evaluate on ``val`` after every epoch. Returns the run's :class:`State` (for a
        population, :attr:`members` holds each member's). ``train``'s labels may be (M, N): each member's own."""
        train = as_tensors(train, "train")
        val = as_tensors(val, "val") if val is not None else None
        x, y = (t.to(self.device) for t in train)
        if any(self.loss_fn is f for f in LOSSES.values()):  # class-index losses: int32/uint8 labels are cast
            y = as_class_labels(y, "train labels")
            val = val if val is None else (val[0], as_class_labels(val[1], "val labels"))
        if val is not None and len(val[0]) == 0:
            val = None
        if val is not None:
            val = tuple(t.to(self.device) for t in val)
        learner, state, members, size = self.learner, self.state, self.members, self.size
        single = self.single
        start = state.epoch + 1 if self._resumed else 0
        state.stop = None
        if single or not self._resumed:
            for s in members:
                s.stop = None
        if not self._resumed:
            self._call("on_fit_start", range(size) if not single else ())
        n, bs = len(x), self.batch_size
        # only callbacks that override on_batch_end are called per step (the hot path)
        batch_callbacks = [cb for cb in self.callbacks if _overrides(cb, "on_batch_end")]
        member_batch = [[cb for cb in cbs if _overrides(cb, "on_batch_end")] for cbs in self.member_callbacks]
        any_member_batch = any(member_batch)
        generators = self.generators
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
                if single:
                    perm = torch.randperm(n, generator=generators[0]).to(self.device)
                else:
                    perm = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(self.device)  # (M, N)
                loss_sum = torch.zeros(size, device=self.device)
                correct = torch.zeros(size, dtype=torch.int64, device=self.device)
                lrs = learner.lrs()
                for i in range(0, n, bs):
                    idx = perm[..., i : i + bs]
                    loss, right = learner.train_step(x, y, idx)
                    state.step += 1
                    loss_sum.add_(loss.detach(), alpha=idx.shape[-1])
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
                extras = learner.epoch_metrics(n)
                train_loss = [v / n for v in loss_sum.tolist()]
                train_acc = [c / n for c in correct.tolist()]
                if val is not None:
                    val_loss, val_acc = learner.evaluate(val[0], val[1])
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
                        s.stop = f"non-finite training loss at epoch {epoch}"
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
        self._call("on_fit_end", range(size) if not single else ())
        self._resumed = False
        return state


__all__ = ["LOSSES", "Trainer", "default_device", "evaluate", "loss_function"]
