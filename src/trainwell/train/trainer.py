"""The fit loop over in-memory tensors, with callbacks, per-epoch validation and exact resume.

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
import torch.nn.functional as F
from torch import nn

from trainwell.data.labels import as_class_labels
from trainwell.optim import Schedule
from trainwell.train.callbacks import Callback, State
from trainwell.train.progress import NullProgress


def _mse_onehot(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(out, F.one_hot(y, out.shape[1]).to(out.dtype))


LOSSES: dict[str, Callable] = {
    "cross_entropy": F.cross_entropy,
    "hinge": F.multi_margin_loss,  # multiclass hinge, margin 1, divided by the number of classes
    "mse": _mse_onehot,  # squared error against one-hot targets, averaged over all outputs
}


def loss_function(name: str) -> Callable:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}: allowed are {', '.join(LOSSES)}")
    return LOSSES[name]


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable = F.cross_entropy,
             batch_size: int = 2048) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``(x, y)`` in eval mode (the mode is restored afterwards)."""
    if any(loss_fn is f for f in LOSSES.values()):
        y = as_class_labels(y, "y")
    was_training = model.training
    model.eval()
    total, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        out = model(x[i : i + batch_size])
        yb = y[i : i + batch_size]
        total += float(loss_fn(out, yb)) * len(yb)
        correct += int((out.argmax(dim=1) == yb).sum())
    model.train(was_training)
    n = max(len(x), 1)
    return {"loss": total / n, "acc": correct / n}


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


class Trainer:
    """Train ``model`` with ``optimizer`` for ``epochs`` epochs of shuffled mini-batches.

    Args:
        loss_fn: a name from :data:`LOSSES` or a callable ``(outputs, targets) -> scalar``.
        schedule: a :class:`~trainwell.optim.Schedule` (stepped per batch, per epoch, or on val loss).
        callbacks: :class:`~trainwell.train.callbacks.Callback` objects, called in order.
        seed: seeds the data order (its own generator) so runs repeat exactly.
        progress: an object with ``start(total, done)``, ``update(metrics)``, ``stop()``.
        penalty: ``penalty(model) -> scalar`` added to the data loss at every step (L1/L2/activity/L0); the
            epoch metrics then carry ``reg_loss`` beside ``train_loss`` (the data loss).
        augment: ``augment(batch, generator) -> batch`` applied to training batches only, with its own seeded
            generator (saved in checkpoints).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: str | Callable = "cross_entropy",
                 *, epochs: int, batch_size: int, schedule: Schedule | None = None,
                 callbacks: Sequence[Callback] = (), device: str | torch.device | None = None, seed: int = 0,
                 progress=None, penalty: Callable[[nn.Module], torch.Tensor] | None = None,
                 augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None):
        self.device = torch.device(device) if device is not None else default_device()
        self.model = model.to(self.device)
        self.optimizer = optimizer
        self.loss_fn = loss_function(loss_fn) if isinstance(loss_fn, str) else loss_fn
        self.epochs = epochs
        self.batch_size = batch_size
        self.schedule = schedule or Schedule(None, "none")
        self.callbacks = list(callbacks)
        self.generator = torch.Generator().manual_seed(seed)
        self.aug_generator = torch.Generator().manual_seed(seed + 1)
        self.penalty, self.augment = penalty, augment
        self.progress = progress or NullProgress()
        self.state = State(model=self.model, optimizer=optimizer, trainer=self)
        self._resumed = False

    # -- checkpointing -------------------------------------------------------------------------------------
    def checkpoint_state(self, copy: bool = False) -> dict:
        """Everything needed to continue exactly: weights, optimizer, schedule, RNGs, position, history.

        With ``copy=True`` the tensors are cloned, so the snapshot survives further training.
        """
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "generator": self.generator.get_state(),
            "aug_generator": self.aug_generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "epoch": self.state.epoch,
            "step": self.state.step,
            "history": list(self.state.history),
        }
        return _clone(state) if copy else state

    def load_checkpoint_state(self, ckpt: dict) -> None:
        """Restore :meth:`checkpoint_state` (and callbacks' states saved beside it); the next fit continues."""
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["schedule"])
        self.generator.set_state(ckpt["generator"])
        if "aug_generator" in ckpt:
            self.aug_generator.set_state(ckpt["aug_generator"])
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
        self._resumed = True

    # -- the loop ------------------------------------------------------------------------------------------
    def _call(self, hook: str) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self.state)

    def fit(self, train: tuple[torch.Tensor, torch.Tensor],
            val: tuple[torch.Tensor, torch.Tensor] | None = None) -> State:
        """Train on ``train``; evaluate on ``val`` after every epoch. Returns the final :class:`State`."""
        x, y = (t.to(self.device) for t in train)
        if any(self.loss_fn is f for f in LOSSES.values()):  # class-index losses: int32/uint8 labels are cast
            y = as_class_labels(y, "train labels")
            val = val if val is None else (val[0], as_class_labels(val[1], "val labels"))
        if val is not None and len(val[0]) == 0:
            val = None
        if val is not None:
            val = tuple(t.to(self.device) for t in val)
        state = self.state
        start = state.epoch + 1 if self._resumed else 0
        state.stop = None
        if not self._resumed:
            self._call("on_fit_start")
        n, bs = len(x), self.batch_size
        model, opt, loss_fn, schedule = self.model, self.optimizer, self.loss_fn, self.schedule
        step_schedule = schedule.scheduler if schedule.interval == "step" else None
        penalty, augment = self.penalty, self.augment
        # only callbacks that override on_batch_end are called per step (the hot path)
        batch_callbacks = [cb for cb in self.callbacks if type(cb).on_batch_end is not Callback.on_batch_end]
        self.progress.start(self.epochs, done=start)
        try:
            for epoch in range(start, self.epochs):
                state.epoch = epoch
                self._call("on_epoch_start")
                tic = time.perf_counter()
                model.train()
                perm = torch.randperm(n, generator=self.generator).to(self.device)
                loss_sum = torch.zeros((), device=self.device)
                correct = torch.zeros((), dtype=torch.int64, device=self.device)
                reg_sum = torch.zeros((), device=self.device)
                lr = opt.param_groups[0]["lr"]
                for i in range(0, n, bs):
                    idx = perm[i : i + bs]
                    xb, yb = x[idx], y[idx]
                    if augment is not None:
                        xb = augment(xb, self.aug_generator)
                    out = model(xb)
                    loss = loss_fn(out, yb)
                    opt.zero_grad(set_to_none=True)
                    if penalty is not None:
                        reg = penalty(model)
                        (loss + reg).backward()
                        reg_sum.add_(reg.detach(), alpha=len(idx))
                    else:
                        loss.backward()
                    opt.step()
                    if step_schedule is not None:
                        step_schedule.step()
                    state.step += 1
                    loss_sum.add_(loss.detach(), alpha=len(idx))
                    correct.add_((out.detach().argmax(dim=1) == yb).sum())
                    if batch_callbacks:
                        state.batch_loss = loss
                        for cb in batch_callbacks:
                            cb.on_batch_end(state)
                metrics = {"epoch": epoch, "step": state.step, "train_loss": float(loss_sum) / n,
                           "train_acc": int(correct) / n, "lr": lr}
                if penalty is not None:
                    metrics["reg_loss"] = float(reg_sum) / n
                if val is not None:
                    v = evaluate(model, val[0], val[1], loss_fn)
                    metrics.update(val_loss=v["loss"], val_acc=v["acc"])
                metrics["time"] = time.perf_counter() - tic
                if schedule.interval == "epoch":
                    schedule.scheduler.step()
                elif schedule.interval == "metric":
                    schedule.scheduler.step(metrics.get("val_loss", metrics["train_loss"]))
                if not math.isfinite(metrics["train_loss"]):
                    state.stop = f"non-finite training loss at epoch {epoch}"
                state.metrics = metrics
                state.history.append(metrics)
                self._call("on_epoch_end")
                self.progress.update(metrics)
                if state.stop is not None:
                    break
        finally:
            self.progress.stop()
        self._call("on_fit_end")
        self._resumed = False
        return state
