"""The callback that runs the stopping criteria of a config inside the fit loop.

It feeds each criterion its sequence (train/val loss, val accuracy, or weight snapshots), applies the guards
first, logs each criterion's current value into the epoch's metrics (so users can watch it), handles the
"then k more epochs at a lower LR" phase, flags overfitting, and restores the best weights at the end.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from trainwell.errors import ConfigError, TrainwellError
from trainwell.train import stopping
from trainwell.train.callbacks import Callback, State, copy_weights
from trainwell.train.stopping import (
    Divergence,
    EarlyStopping,
    FixedSchedule,
    LossChange,
    NonFinite,
    OverfitDetector,
    WeightChange,
)

CRITERIA = tuple(stopping.CRITERIA)  # the names; the registry is trainwell.train.stopping.CRITERIA
_BUILT_IN = ("fixed", "loss_change", "weight_change", "early_stopping")  # the Stopper's own arguments
_MISSING = object()  # a record without the value a series reads


def _flat_weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu().clone()


class Stopper(Callback):
    """Stop training when any configured criterion fires (guards first); see :mod:`trainwell.train.stopping`."""

    def __init__(self, *, fixed: FixedSchedule | None = None, loss_change: LossChange | None = None,
                 loss_monitor: str = "train_loss", weight_change: WeightChange | None = None,
                 early_stopping: EarlyStopping | None = None, monitor: str = "val_loss", restore_best: bool = True,
                 divergence: Divergence | None = None, extra_epochs: int = 0, extra_lr_factor: float = 0.1,
                 overfit: OverfitDetector | None = None, overfit_stop: bool = False, strict: bool = True,
                 others: dict | None = None):
        self.fixed, self.loss_change, self.loss_monitor = fixed, loss_change, loss_monitor
        # registered criteria beyond the built-in four: {name: criterion}, fed the series their registry entry names
        self.others = dict(others or {})
        self.weight_change, self.early_stopping, self.monitor = weight_change, early_stopping, monitor
        self.restore_best, self.divergence, self.nonfinite = restore_best, divergence, NonFinite()
        self.extra_epochs, self.extra_lr_factor = extra_epochs, extra_lr_factor
        self.overfit, self.overfit_stop = overfit, overfit_stop
        self.strict = strict  # Lightning's EarlyStopping(strict=True): a monitor that is never logged is an error
        self.from_config = False  # set by from_config: refusals then name the config's keys
        self.on_fit_start(None)

    # -- state ---------------------------------------------------------------------------------------------
    def on_fit_start(self, state: State | None) -> None:
        self._read: dict[str, tuple] = {}  # what _read_series has read of the history, per series
        self._scans: dict[str, dict] = {}  # EarlyStopping.scan's memo of the monitored series (see _read_series)
        self._overfit_from = 0  # the overfitting scan's next epoch (not saved: a resumed fit scans once from 0)
        self.snapshots: list[torch.Tensor] = []
        self.best_weights: dict | None = None
        self.best_epoch: int | None = None
        self.restored_epoch: int | None = None
        self.extra_left: int | None = None
        self.pending_reason: str | None = None
        self.overfit_epoch: int | None = None
        self.failure: str | None = None

    def state_dict(self) -> dict:
        return {"snapshots": self.snapshots, "best_weights": self.best_weights, "best_epoch": self.best_epoch,
                "extra_left": self.extra_left, "pending_reason": self.pending_reason,
                "overfit_epoch": self.overfit_epoch, "failure": self.failure}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)

    # -- helpers -------------------------------------------------------------------------------------------
    def _read_series(self, state: State, name: str, item: Callable[[dict], Any]) -> list:
        """``item(record)`` of every record of the history (``_MISSING`` skips a record). Each closed record is read
        once: the list is kept and extended, so that no epoch walks the whole run's records in Python (that was
        O(epochs^2) over a long full-batch run; what is returned is a C-level copy of the list). The last record,
        the epoch being closed (later callbacks may still add to it), is read on every call and never kept. A new
        or shortened history (a new fit, a resume) is read again from the start."""
        history = state.history
        closed = max(len(history) - 1, 0)
        ref, n, items = self._read.get(name, (None, 0, []))
        if ref is not history or n > closed:
            n, items = 0, []
            self._scans.pop(name, None)  # an early-stopping walk of the old series is void too
        for record in itertools.islice(history, n, closed):
            value = item(record)
            if value is not _MISSING:
                items.append(value)
        self._read[name] = (history, max(closed, n), items)
        last = item(history[-1]) if history else _MISSING
        return items + [last] if last is not _MISSING else list(items)

    def _series(self, state: State, key: str) -> list[float]:
        """The values of ``key`` over the history, in order (records without it skipped)."""
        return self._read_series(state, key, lambda r: r.get(key, _MISSING))

    def _fed(self, state: State, series: str) -> list:
        """The sequence a registered criterion reads (see :class:`~trainwell.train.stopping.CriterionSpec`)."""
        if series == "weights":
            return self.snapshots
        key = {"loss_monitor": self.loss_monitor, "monitor": self.monitor}.get(series, series)
        return self._series(state, key)

    def _require_logged(self, state: State, key: str, what: str, criterion) -> None:
        """With ``strict``, refuse a criterion whose metric ``key`` this run does not log (Lightning's
        EarlyStopping(strict=True)): it would never fire, and say nothing. A Stopper built from a config
        (:func:`from_config`) names the config's keys (``stop.monitor``, ``stop.strict``) and raises
        :class:`~trainwell.errors.ConfigError`; one a library user passed as ``criterion`` (an instance) names
        the call's own remedies: validation data for ``fit``, another ``monitor``, or dropping the callback."""
        m = state.metrics
        if not self.strict or key in m:
            return
        available = ", ".join(sorted(k for k, v in m.items() if isinstance(v, (int, float)))) or "none"
        seen = f"{what} {key!r}, which this run does not log (available: {available}): "
        name = type(criterion).__name__
        monitors = isinstance(criterion, EarlyStopping)
        if self.from_config:
            raise ConfigError(seen + ("monitor one of them (stop.monitor), " if monitors else "")
                              + "give validation data, or let it pass (stop.strict = false)")
        raise TrainwellError(seen + (f"monitor one of them ({name}(monitor=...)), " if monitors else "")
                             + f"give validation data (trainer.fit(train, val)), or drop {name} from callbacks")

    def _other_checks(self, state: State) -> list:
        """(criterion, its series, may it extend) for the registered criteria beyond the built-in four; each one's
        current value (if it has ``value``) goes into the epoch's metrics under its name."""
        checks = []
        for name, criterion in self.others.items():
            spec = stopping.CRITERIA[name]
            if spec.series != "weights":
                key = {"loss_monitor": self.loss_monitor, "monitor": self.monitor}.get(spec.series, spec.series)
                self._require_logged(state, key, f"the stopping criterion {name!r} reads", criterion)
            series = self._fed(state, spec.series)
            if hasattr(criterion, "value"):
                state.metrics[name] = criterion.value(series)
            checks.append((criterion, series, spec.may_extend))
        return checks

    @staticmethod
    def _scale_lr(state: State, factor: float) -> None:
        """Multiply this model's (member's) LR by ``factor``; its schedule stops, so the lowered LR stays."""
        if state.learner is not None:
            state.learner.scale_lr(factor, state.member)
            return
        for group in state.optimizer.param_groups:
            group["lr"] *= factor
        state.trainer.schedule.interval = "none"

    def _start_extra_phase(self, state: State, reason: str) -> None:
        self.pending_reason = reason
        self.extra_left = self.extra_epochs
        self._scale_lr(state, self.extra_lr_factor)

    # -- the hook ------------------------------------------------------------------------------------------
    def on_epoch_end(self, state: State) -> None:
        train = self._series(state, "train_loss")
        if self._guarded(state, train):  # guards first: they stop at once, with no extra phase
            return
        self._record(state)
        if self._overfitting(state):
            return
        if self.extra_left is not None:  # in the lower-LR phase after a criterion fired
            self.extra_left -= 1
            if self.extra_left <= 0:
                state.stop = f"{self.pending_reason}; then {self.extra_epochs} epochs at lr x {self.extra_lr_factor:g}"
            return
        if self.fixed is not None:
            factor = self.fixed.lr_factor_after(state.epoch)
            if factor is not None:
                self._scale_lr(state, factor)
        self._criteria(state, train)

    def _guarded(self, state: State, train: list[float]) -> bool:
        """Stop at once (a failed run) when a guard (non-finite, divergence) fires on the training loss."""
        for guard in (self.nonfinite, self.divergence):
            if guard is not None:
                stop, reason = guard.evaluate(train)
                if stop:
                    state.stop = state.failure = self.failure = reason
                    return True
        return False

    def _record(self, state: State) -> None:
        """Log each criterion's current value into the epoch's metrics; keep weight snapshots and the best
        weights for early stopping."""
        m = state.metrics
        if self.weight_change is not None:
            self.snapshots.append(_flat_weights(state.model))
            self.snapshots = self.snapshots[-(self.weight_change.window + 1):]
            m["weight_change"] = self.weight_change.value(self.snapshots)
        if self.loss_change is not None:
            m["loss_change"] = self.loss_change.value(self._series(state, self.loss_monitor))
        if self.early_stopping is None:
            return
        self._require_logged(state, self.monitor, "early stopping monitors", self.early_stopping)
        series = self._series(state, self.monitor)
        _, _, best, best_i, wait = self.early_stopping.scan(series, self._scans.setdefault(self.monitor, {}))
        m["patience_wait"] = wait
        if best_i is not None and best_i == len(series) - 1 and math.isfinite(series[-1]):
            self.best_epoch = state.epoch
            # the best weights so far are superseded: the copy reuses their tensors (saved checkpoints hold their own)
            self.best_weights = copy_weights(state.model.state_dict(), self.best_weights)

    def _overfitting(self, state: State) -> bool:
        """Flag the first overfitting epoch (once); True if that stops the run (``overfit_stop``)."""
        if self.overfit is None or self.overfit_epoch is not None:
            return False
        # the epochs that logged both losses (validation may run on some epochs only), paired by epoch
        def paired(key: str) -> list:
            return self._read_series(state, f" {key} of the epochs with both losses",
                                     lambda r: r[key] if "val_loss" in r and "train_loss" in r else _MISSING)

        train, val = paired("train_loss"), paired("val_loss")
        t = self.overfit.detect(train, val, start=self._overfit_from)
        if t is None:
            self._overfit_from = len(train)  # checked up to here: the next epoch starts there
            return False
        self.overfit_epoch = paired("epoch")[t]
        state.metrics["overfit"] = True
        if self.overfit_stop:
            state.stop = (f"overfitting: val loss rose for {self.overfit.window} epochs while train loss "
                          f"fell (epoch {self.overfit_epoch + 1})")
        return self.overfit_stop

    def _criteria(self, state: State, train: list[float]) -> None:
        """Evaluate the criteria in order; the first that fires stops the run (a NaN value: failed) or starts the
        lower-LR phase."""
        checks = [
            (self.fixed, train, False),
            (self.loss_change, self._series(state, self.loss_monitor), True),
            (self.weight_change, self.snapshots, False),
            (self.early_stopping, self._series(state, self.monitor), True),
            *self._other_checks(state),
        ]
        for criterion, series, may_extend in checks:
            if criterion is None:
                continue
            if criterion is self.early_stopping:  # the walk _record stored: only the new values are read
                stop, reason, *_ = criterion.scan(series, self._scans.setdefault(self.monitor, {}))
            else:
                stop, reason = criterion.evaluate(series)
            if stop:
                if series and isinstance(series[-1], float) and not math.isfinite(series[-1]):
                    # a NaN validation loss is a failure, not a finish
                    state.stop = state.failure = self.failure = reason
                elif may_extend and self.extra_epochs > 0:
                    self._start_extra_phase(state, reason)
                else:
                    state.stop = reason
                return

    def on_fit_end(self, state: State) -> None:
        if self.early_stopping is not None and self.restore_best and self.best_weights is not None:
            state.model.load_state_dict(self.best_weights)
            self.restored_epoch = self.best_epoch
            state.weights_epoch = self.best_epoch  # history[-1] no longer describes the model: say which does
            trainer = getattr(state, "trainer", None)
            if trainer is not None and state is trainer.state and not trainer.single:  # a population's run-level
                for member in trainer.members:  # restore gave every member that epoch's weights (a member frozen
                    if member.history:  # before it: its last ones)
                        member.weights_epoch = min(self.best_epoch, member.epoch)


def from_config(cfg) -> Stopper:
    """Build the :class:`Stopper` a StopConfig describes (guards are always on; divergence unless 'none'); each
    chosen criterion is built by its registry entry (:data:`trainwell.train.stopping.CRITERIA`)."""
    built = {name: stopping.CRITERIA[name].build(cfg) for name in cfg.criteria}
    stopper = Stopper(
        **{name: built.get(name) for name in _BUILT_IN},
        loss_monitor=cfg.loss_monitor,
        monitor=cfg.monitor,
        restore_best=cfg.restore_best,
        divergence=Divergence(cfg.divergence_factor) if cfg.divergence_factor is not None else None,
        extra_epochs=cfg.extra_epochs,
        extra_lr_factor=cfg.extra_lr_factor,
        overfit=OverfitDetector(cfg.overfit_window),
        overfit_stop=cfg.overfit_stop,
        strict=cfg.strict,
        others={name: c for name, c in built.items() if name not in _BUILT_IN},
    )
    stopper.from_config = True
    return stopper


def as_callback(obj):
    """Return ``obj`` if it is a callback; a stopping criterion (:class:`FixedSchedule`, :class:`LossChange`,
    :class:`WeightChange`, :class:`EarlyStopping`, :class:`~trainwell.train.stopping.GeneralizationLoss`) is wrapped
    in a :class:`Stopper`, so that criteria can be passed
    as callbacks as Keras and Lightning users do: ``Trainer(..., callbacks=[EarlyStopping(patience=2)])``.

    EarlyStopping watches its ``monitor`` (default ``val_loss``) and restores the best weights at the end only when
    built with ``restore_best_weights=True``.

    Raises:
        ValueError: ``EarlyStopping(mode="max")`` without a monitor (maximizing ``val_loss`` is never meant, and
            silently watching another metric would surprise).
    """
    if isinstance(obj, Callback):
        return obj
    if isinstance(obj, EarlyStopping):
        monitor = getattr(obj, "monitor", None)
        if monitor is None:
            if obj.mode == "max":
                raise ValueError("EarlyStopping(mode='max') needs the metric to maximize: "
                                 "EarlyStopping(monitor='val_acc', mode='max', ...)")
            monitor = "val_loss"
        return Stopper(early_stopping=obj, monitor=monitor,
                       restore_best=getattr(obj, "restore_best_weights", False))
    for cls, key in ((FixedSchedule, "fixed"), (LossChange, "loss_change"), (WeightChange, "weight_change")):
        if isinstance(obj, cls):
            return Stopper(**{key: obj})
    if isinstance(obj, stopping.GeneralizationLoss):  # a registered criterion: fed the validation loss
        return Stopper(others={"generalization_loss": obj})
    if isinstance(obj, type) and (issubclass(obj, Callback) or obj in _CRITERIA):
        raise TypeError(f"callbacks: {obj.__name__} is the class, not a callback: give an instance, "
                        f"callbacks=[{obj.__name__}(...)]")
    raise TypeError(f"callbacks: {type(obj).__name__} is neither a Callback nor a stopping criterion (FixedSchedule, "
                    f"LossChange, WeightChange, EarlyStopping, GeneralizationLoss)")


def as_callbacks(objs, what: str = "callbacks") -> list:
    """:func:`as_callback` of each of ``objs``, a list; a single callback or criterion given without its list is
    refused in one line (iterating it would fail with torch-deep wording, or not at all)."""
    if isinstance(objs, (Callback, type, *_CRITERIA)) or not isinstance(objs, Iterable):
        name = objs.__name__ if isinstance(objs, type) else type(objs).__name__
        raise TypeError(f"{what} takes a list of callbacks, got {name} alone: {what}=[{name}(...)]")
    return [as_callback(cb) for cb in objs]


_CRITERIA = (FixedSchedule, LossChange, WeightChange, EarlyStopping, stopping.GeneralizationLoss)
