"""Callbacks: hooks into the fit loop, and the small State they receive.

A callback overrides any of the no-op hooks; it requests a stop by setting ``state.stop = "reason"``; it resets
itself in ``on_fit_start``; a stateful one implements ``state_dict`` / ``load_state_dict`` so that resumed runs
continue exactly (the convention of Keras / Lightning callbacks).
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class State:
    """What the loop shares with callbacks: position, the last epoch's metrics, the full history.

    After :meth:`~trainwell.train.Trainer.fit`, ``weights_epoch`` is the epoch whose weights the model holds: the
    last trained epoch, or the best one when a callback restored it (``EarlyStopping(restore_best_weights=True)``),
    so ``history[weights_epoch]`` describes the returned model.

    In a population each member has its own State (``member`` = its index, ``model`` = a view of its weights);
    ``learner`` is the object that trains (see :mod:`trainwell.train.learners`).
    """

    model: Any
    optimizer: Any
    epoch: int = 0
    step: int = 0
    metrics: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    stop: str | None = None
    failure: str | None = None  # set with ``stop`` when a guard fires (non-finite, divergence): a failed run
    batch_loss: Any = None
    trainer: Any = None
    learner: Any = None
    member: int = 0
    weights_epoch: int | None = None  # after fit: the epoch (0-based, as in history) whose weights the model holds


class Callback:
    """Base class: every hook is a no-op.

    ``vmap_safe = False`` declares that a callback needs the real ``nn.Module`` (e.g. forward hooks), so it cannot
    run on a vmapped population; the loop refuses it there and the sweep reports it as skipped.
    """

    vmap_safe = True

    def on_fit_start(self, state: State) -> None:
        pass

    def on_epoch_start(self, state: State) -> None:
        pass

    def on_batch_end(self, state: State) -> None:
        pass

    def on_epoch_end(self, state: State) -> None:
        pass

    def on_fit_end(self, state: State) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def monitored_name(monitor: str, metrics: dict) -> str | None:
    """The metric an epoch's ``monitor`` is read from: ``monitor`` itself, or, in a run without validation, a
    ``val_`` metric's training counterpart (``val_acc`` -> ``train_acc``); None when the epoch has neither."""
    if monitor in metrics:
        return monitor
    counterpart = "train_" + monitor[len("val_"):] if monitor.startswith("val_") else None
    return counterpart if counterpart in metrics else None


def best_epoch(history: list[dict], monitor: str = "val_loss") -> int | None:
    """The epoch whose ``monitor`` value (its training counterpart where a record lacks it, as
    :func:`monitored_name` reads it; else ``train_loss``) is best (the first of ties; non-finite values never
    count): what :class:`Checkpoint` keeps as ``best.pt``."""
    best, epoch = None, None
    for record in history:
        name = monitored_name(monitor, record) or "train_loss"
        value = record.get(name)
        if value is None or not math.isfinite(value):
            continue
        if best is None or (value > best if name.endswith("acc") else value < best):
            best, epoch = value, record["epoch"]
    return epoch


class MetricsLogger(Callback):
    """Append each epoch's metrics to ``metrics.jsonl`` (one JSON object per line)."""

    def __init__(self, path):
        self.path = path

    def on_epoch_end(self, state: State) -> None:
        from trainwell.rundir import append_jsonl

        append_jsonl(self.path, state.metrics)


def copy_weights(weights: dict, kept: dict | None) -> dict:
    """A copy of the state dict ``weights``, made in ``kept`` (an earlier copy) when it has the same names, shapes,
    dtypes and devices: one ``_foreach_copy_`` instead of a clone per tensor, no allocation. Otherwise fresh
    clones (other values deep-copied). For the best weights a callback keeps at every improvement: the caller must
    be done with the previous copy (written to disk, or superseded) before the next one overwrites it."""
    import torch

    if kept is None or list(kept) != list(weights) or any(
            not isinstance(v, torch.Tensor) or v.layout != torch.strided or a.shape != v.shape
            or a.dtype != v.dtype or a.device != v.device
            for a, v in zip(kept.values(), weights.values(), strict=True)):
        return {k: v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v) for k, v in weights.items()}
    torch._foreach_copy_(list(kept.values()), [v.detach() for v in weights.values()])
    return kept


class Checkpoint(Callback):
    """Save ``last.pt`` every ``every`` epochs, at least every ``minutes`` minutes, and at the end; keep the best
    weights by ``monitor`` and write them to ``best.pt`` alongside.

    Checkpoints hold state dicts, the resolved config and every RNG state, so ``--resume`` continues bit for bit
    from ``last.pt``. The best weights are copied in memory at every improvement and written to ``best.pt`` when
    ``last.pt`` is, so the two files on disk always describe the same point of training. A non-finite epoch
    never overwrites ``last.pt``: the last good checkpoint stays. ``rundir`` is a :class:`~trainwell.rundir.RunDir`
    or a folder (created; the files go in its ``checkpoints/``).
    """

    def __init__(self, rundir, every: int = 1, monitor: str = "val_loss", extra: dict | None = None,
                 minutes: float = 1.0, keep_best: bool = True, resumable: bool = True,
                 weights: Callable[[State], dict] | None = None):
        if isinstance(rundir, (str, os.PathLike)):  # a folder: checkpoints/last.pt and best.pt go inside it
            from trainwell.rundir import RunDir

            rundir = RunDir(rundir)
            rundir.checkpoints.mkdir(parents=True, exist_ok=True)  # only what it writes: no empty figures/
        self.rundir = rundir
        self.keep_best = keep_best
        self.resumable = resumable  # False: best.pt only (a population member: the population's last.pt resumes it)
        self.weights = weights  # state -> the model's state dict for best.pt (default: the trainer's model), copied
        self.every = every
        self.minutes = minutes
        self.monitor = monitor
        self.extra = extra or {}
        self.best: float | None = None
        self.best_epoch: int | None = None
        self._best_state: dict | None = None
        self._kept: dict | None = None  # the tensors the best weights are copied into (copy_weights)
        self._last_save = time.monotonic()

    def _better(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.monitor.endswith("acc") else value < self.best

    def on_fit_start(self, state: State) -> None:
        from trainwell.rundir import atomic_torch_save

        if state.history:  # a fit that continues an earlier call's run: its best and its last.pt stand
            return
        self.best, self.best_epoch, self._best_state = None, None, None
        if not self._resumes(state):
            return
        # the initial state (epoch -1: resuming from it starts at epoch 0) is the last good state until an epoch
        # completes, so a run that fails in its first epoch still leaves a checkpoint
        atomic_torch_save(self.rundir.last, {**state.trainer.checkpoint_state(), "epoch": -1, "step": 0,
                                             "history": [], **self.extra, **state.trainer.callback_states()})
        self._last_save = time.monotonic()

    def _monitored(self, metrics: dict) -> float | None:
        """The monitored value of an epoch's metrics; without validation, a ``val_`` metric's training
        counterpart (``val_acc`` -> ``train_acc``, compared the same way). A name the epoch does not have at all
        (a typo) is refused in one line."""
        name = monitored_name(self.monitor, metrics)
        if name is not None:
            value = metrics[name]
            if self.keep_best and name.endswith("_acc") and value != value:  # NaN: the targets are no classes
                raise ValueError(f"Checkpoint(monitor={self.monitor!r}) is not allowed here: {name} is NaN, as a "
                                 f"regression records no accuracy: monitor a loss (val_loss)")
            return value
        if not self.keep_best:
            return None
        names = ", ".join(k for k in metrics if k not in ("epoch", "step", "time"))
        raise ValueError(f"Checkpoint(monitor={self.monitor!r}) is not allowed: the epochs record {names}")

    def on_epoch_end(self, state: State) -> None:
        value = self._monitored(state.metrics)
        if self.keep_best and value is not None and self._better(float(value)):
            self.best, self.best_epoch = float(value), state.epoch
            # the weights and where they came from, not the optimizer or the history: copying those at every
            # improvement would cost time growing with the run (best.pt is for using the model, last.pt for resuming)
            if self.weights is not None:  # copied as the trainer's weights are (one _foreach_copy_ once kept)
                self._kept = copy_weights(self.weights(state), self._kept)
                self._best_state = {"model": self._kept, "epoch": state.epoch, "step": state.step, **self.extra}
            else:
                trainer = state.trainer
                model_state = getattr(trainer.learner, "model_state", None)  # the weights alone: not the optimizer's
                if state is not trainer.state:  # a population member's callback: that member's own weights
                    weights = state.model.state_dict()
                else:
                    weights = model_state() if model_state is not None else trainer.checkpoint_state()["model"]
                self._kept = copy_weights(weights, self._kept)
                self._best_state = {"model": self._kept, "epoch": state.epoch, "step": state.step, **self.extra}
        finite = math.isfinite(state.metrics.get("train_loss", 0.0))
        if state.failure is not None or not finite:  # a guard fired: last.pt keeps the last good state
            self.save_best()
            return
        due = ((state.epoch + 1) % self.every == 0 or state.stop is not None
               or state.epoch + 1 == state.trainer.epochs
               or time.monotonic() - self._last_save >= 60.0 * self.minutes)
        if due:
            self.save(state)

    def _resumes(self, state: State) -> bool:
        """Whether ``last.pt`` is written: not for a population member (a member callback: the population's own
        checkpoint resumes it, and a copy of the whole population in every member's folder would only fill the
        disk), nor with ``resumable=False``."""
        return self.resumable and state is state.trainer.state

    def save_best(self) -> None:
        """Write ``best.pt`` if the best weights changed since the last write."""
        from trainwell.rundir import atomic_torch_save

        if self._best_state is not None:
            atomic_torch_save(self.rundir.best, self._best_state)
            self._best_state = None

    def save(self, state: State) -> None:
        """Write ``last.pt`` (and ``best.pt`` if the best changed since the last write) atomically."""
        from trainwell.rundir import atomic_torch_save, sync_file

        sync_file(self.rundir.metrics)  # the metric lines up to this checkpoint are durable before it is
        self.save_best()
        if not self._resumes(state):
            return
        atomic_torch_save(self.rundir.last, {
            **state.trainer.checkpoint_state(), **self.extra, **state.trainer.callback_states(),
            "stop": state.stop,  # a finished run's checkpoint says so: resuming it trains no further
        })
        self._last_save = time.monotonic()

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")


class StepLosses(Callback):
    """Keep every training step's loss (as floats, converted once per epoch) for loss-curve diagnosis.

    In a population (the batch loss is an (M,) tensor) ``losses`` holds one list per step; :meth:`member`
    gives member m's curve.
    """

    def __init__(self):
        self.losses: list[float] = []
        self._pending: list = []

    def on_fit_start(self, state: State) -> None:
        self.losses, self._pending = [], []

    def on_batch_end(self, state: State) -> None:
        self._pending.append(state.batch_loss.detach())

    def on_epoch_end(self, state: State) -> None:
        self.flush()

    def flush(self) -> None:
        """Convert the steps recorded since the last call into :attr:`losses` (one transfer per epoch)."""
        if self._pending:
            import torch

            self.losses.extend(torch.stack(self._pending).float().tolist())
            self._pending = []

    def state_dict(self) -> dict:
        import torch

        return {"losses": torch.tensor(self.losses, dtype=torch.float64)}  # one tensor: cheap to checkpoint

    def load_state_dict(self, state: dict) -> None:
        losses = state.get("losses", [])
        self.losses = losses.tolist() if hasattr(losses, "tolist") else list(losses)

    def member(self, m: int, steps: int | None = None) -> list[float]:
        """Member ``m``'s per-step losses (its first ``steps``: a member that stopped is not trained further)."""
        self.flush()
        rows = self.losses[:steps] if steps is not None else self.losses
        return [r[m] if isinstance(r, list) else r for r in rows]
