"""Callbacks: hooks into the fit loop, and the small State they receive.

A callback overrides any of the no-op hooks; it requests a stop by setting ``state.stop = "reason"``; it resets
itself in ``on_fit_start``; a stateful one implements ``state_dict`` / ``load_state_dict`` so that resumed runs
continue exactly (the convention of Keras / Lightning callbacks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class State:
    """What the loop shares with callbacks: position, the last epoch's metrics, the full history."""

    model: Any
    optimizer: Any
    epoch: int = 0
    step: int = 0
    metrics: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    stop: str | None = None
    batch_loss: Any = None
    trainer: Any = None


class Callback:
    """Base class: every hook is a no-op."""

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


class MetricsLogger(Callback):
    """Append each epoch's metrics to ``metrics.jsonl`` (one JSON object per line)."""

    def __init__(self, path):
        self.path = path

    def on_epoch_end(self, state: State) -> None:
        from trainwell.rundir import append_jsonl

        append_jsonl(self.path, state.metrics)


class Checkpoint(Callback):
    """Save ``last.pt`` every ``every`` epochs (and at the end) and ``best.pt`` when the monitored metric improves.

    Checkpoints hold state dicts, the resolved config and every RNG state, so ``--resume`` continues bit for bit.
    A non-finite epoch never overwrites ``last.pt``: the last good checkpoint stays.
    """

    def __init__(self, rundir, every: int = 1, monitor: str = "val_loss", extra: dict | None = None):
        self.rundir = rundir
        self.every = every
        self.monitor = monitor
        self.extra = extra or {}
        self.best: float | None = None
        self.best_epoch: int | None = None

    def _better(self, value: float) -> bool:
        if value != value:  # NaN never improves
            return False
        if self.best is None:
            return True
        return value > self.best if self.monitor.endswith("acc") else value < self.best

    def _save(self, path, state: State) -> None:
        from trainwell.rundir import atomic_torch_save

        atomic_torch_save(path, {**state.trainer.checkpoint_state(), **self.extra, "callbacks": self._callbacks(state)})

    @staticmethod
    def _callbacks(state: State) -> dict:
        return {type(cb).__name__: cb.state_dict() for cb in state.trainer.callbacks}

    def on_epoch_end(self, state: State) -> None:
        value = state.metrics.get(self.monitor)
        if value is None:
            value = state.metrics.get("train_loss")
        finite = math.isfinite(state.metrics.get("train_loss", 0.0))
        if value is not None and self._better(float(value)):
            self.best, self.best_epoch = float(value), state.epoch
            self._save(self.rundir.best, state)
        due = (state.epoch + 1) % self.every == 0 or state.stop is not None or state.epoch + 1 == state.trainer.epochs
        if finite and due:
            self._save(self.rundir.last, state)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")
