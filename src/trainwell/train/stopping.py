"""When to stop training: the lecture's four criteria and two safety guards.

Each criterion is a pure ``evaluate(history) -> (stop, reason)`` over a list of numbers (or weight vectors), so it
can be tested with scripted sequences; :class:`StopCallback` feeds them from the fit loop.

- :class:`FixedSchedule`: train n epochs, multiply the LR by a factor, train m more epochs, stop.
- :class:`LossChange`: stop at epoch t when (L[t-w] - L[t]) / |L[t-w]| < x (window w, default 10: one epoch is
  too noisy); never before w + 1 values exist.
- :class:`WeightChange`: stop when max_i |w_i(t) - w_i(t-w)| < theta, or < theta * |w_i(t-w)| (relative); the
  maximum over coordinates, not the length of the whole change vector.
- :class:`EarlyStopping`: validation early stopping with the semantics of Lightning/Keras (Prechelt 1998, "Early
  stopping - but when?"): the first value is an improvement; an improvement is a change strictly greater than
  ``min_delta`` (or ``min_delta * |best|`` when relative); patience counts consecutive non-improving values.
  Guards, checked first in this order: non-finite value (Lightning's ``check_finite``, default on; off, a NaN is
  a non-improving value), stopping threshold (strict), divergence threshold (strict). Keras' options:
  ``baseline`` (the patience counter restarts only on values that beat both the best so far and the baseline,
  so a run that never beats it stops after ``patience`` non-improving values), ``start_from_epoch`` (values
  before it are not monitored), ``patience = 0`` (stop at the first non-improving value).
- Guards: :class:`NonFinite` and :class:`Divergence` (loss > factor x best so far, and above its first value).
- Reasons count epochs from 1 (the first value is epoch 1), as users do; indices returned by ``scan`` and
  ``detect`` are 0-based positions in the list.
- :class:`GeneralizationLoss`: Prechelt's GL_alpha: stop when the validation loss is more than alpha percent above
  its minimum so far.
- :class:`OverfitDetector`: flags the first epoch where validation loss has risen for k evaluations while training
  loss fell.

:data:`CRITERIA` registers each criterion under its ``stop.criteria`` name, with how to build it from a
:class:`~trainwell.config.StopConfig` and which sequence the fit loop feeds it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


def _real(value):
    """``value`` as a float if it is a real number (a NumPy scalar or 0-dim tensor too), else None."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype != torch.bool and not value.is_complex():
        return float(value.item())
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def _count(owner: str, name: str, value, least: int) -> int:
    """``value`` as an int >= ``least`` (a NumPy integer too), or a one-line refusal naming ``owner(name=...)``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise ValueError(f"{owner}({name}={_shown(value)}) is not allowed: use an integer >= {least}")
    return int(value)


def _finite(owner: str, name: str, value, allowed: str, ok: Callable[[float], bool]) -> float:
    """``value`` as a finite float that ``ok`` accepts, or a one-line refusal naming ``owner(name=...)``."""
    number = _real(value)
    if number is None or not math.isfinite(number) or not ok(number):
        raise ValueError(f"{owner}({name}={_shown(value)}) is not allowed: use {allowed}")
    return number


def _shown(value) -> str:
    """``value`` for a one-line message (a tensor of several numbers by its shape)."""
    if isinstance(value, torch.Tensor) and value.dim() > 0:
        return f"<tensor of shape {tuple(value.shape)}>"
    return repr(value)


class FixedSchedule:
    """Train ``epochs`` epochs, multiply the LR by ``factor``, train ``more`` epochs, then stop."""

    def __init__(self, epochs: int, factor: float = 0.1, more: int = 0):
        epochs, more = _count("FixedSchedule", "epochs", epochs, 1), _count("FixedSchedule", "more", more, 0)
        factor = _finite("FixedSchedule", "factor", factor, "a number > 0", lambda v: v > 0)
        self.epochs, self.factor, self.more = epochs, factor, more

    def lr_factor_after(self, epoch: int) -> float | None:
        """The LR multiplier to apply after ``epoch`` (0-based), or None."""
        return self.factor if self.more and epoch + 1 == self.epochs else None

    def evaluate(self, history: Sequence[float]) -> tuple[bool, str]:
        total = self.epochs + self.more
        if len(history) >= total:
            return True, f"fixed schedule: {self.epochs} epochs, then {self.more} at lr x {self.factor:g}"
        return False, ""


class LossChange:
    """Stop when the monitored loss dropped by less than ``threshold`` (a fraction) over ``window`` epochs."""

    def __init__(self, threshold: float = 0.01, window: int = 10):
        window = _count("LossChange", "window", window, 1)
        threshold = _finite("LossChange", "threshold", threshold, "a number >= 0 (a fraction)", lambda v: v >= 0)
        self.threshold, self.window = threshold, window

    def value(self, history: Sequence[float]) -> float | None:
        """The relative drop (L[t-w] - L[t]) / |L[t-w]|, or None before w + 1 values exist."""
        if len(history) <= self.window:
            return None
        old, new = history[-1 - self.window], history[-1]
        if old == 0:
            return 0.0 if new == 0 else -math.inf
        return (old - new) / abs(old)

    def evaluate(self, history: Sequence[float]) -> tuple[bool, str]:
        v = self.value(history)
        if v is not None and v < self.threshold:
            return True, (f"loss change: dropped {v:.2%} over the last {self.window} epochs "
                          f"(< {self.threshold:.2%})")
        return False, ""


class WeightChange:
    """Stop when no weight moved by ``threshold`` or more (absolute, or relative to |w|) over ``window`` epochs."""

    def __init__(self, threshold: float = 1e-4, window: int = 10, relative: bool = False):
        window = _count("WeightChange", "window", window, 1)
        threshold = _finite("WeightChange", "threshold", threshold, "a number > 0", lambda v: v > 0)
        self.threshold, self.window, self.relative = threshold, window, relative

    def value(self, history: Sequence[torch.Tensor]) -> float | None:
        """max_i |w_i(t) - w_i(t-w)| (divided by |w_i(t-w)| when relative), or None before w + 1 snapshots."""
        if len(history) <= self.window:
            return None
        old, new = history[-1 - self.window], history[-1]
        change = (new - old).abs()
        if self.relative:
            change = change / old.abs().clamp_min(1e-12)
        return float(change.max()) if change.numel() else 0.0

    def evaluate(self, history: Sequence[torch.Tensor]) -> tuple[bool, str]:
        v = self.value(history)
        if v is not None and v < self.threshold:
            kind = "relative" if self.relative else "absolute"
            return True, (f"weight change: max {kind} change {v:.3g} over {self.window} epochs "
                          f"(< {self.threshold:g})")
        return False, ""


class EarlyStopping:
    """Validation early stopping (see the module docstring for the exact semantics).

    As a pure criterion, ``evaluate(values)`` reads a list of numbers. As a callback (``Trainer(...,
    callbacks=[EarlyStopping(...)])``) it speaks Keras' and Lightning's dialect:

    Args:
        mode: ``"min"`` or ``"max"``; None (Keras' "auto") picks ``"max"`` for a monitor that names an accuracy
            (``val_acc``, ``accuracy``) and ``"min"`` otherwise. It is the first positional argument (Keras'
            first is the monitor): ``EarlyStopping("val_acc")`` is refused with a pointer to ``monitor=``.
        min_delta: the least change that counts as an improvement, a finite number >= 0.
        stopping_threshold, divergence_threshold, baseline: finite numbers, or None (off); compared with the
            monitored value, so a string or NaN is refused here rather than failing (or never firing) in ``fit``.
            Numbers may be NumPy scalars or 0-dim tensors (stored as floats).
        monitor: the metric a callback watches (``"val_loss"``, ``"val_acc"``, ``"train_loss"``, ...); default
            ``"val_loss"``. ``mode="max"`` without a monitor is refused as a callback rather than guessing one.
        restore_best_weights: as a callback, load the best epoch's weights into the model when training ends
            (Keras' default: False, the model keeps its last epoch's weights). The returned ``State.weights_epoch``
            says which epoch's weights the model holds either way.

    Example:
        >>> EarlyStopping(patience=2).evaluate([3.0, 2.0, 2.5, 2.6])
        (True, 'early stopping: no improvement for 2 epochs (best 2 at epoch 2)')
        >>> EarlyStopping(monitor="val_acc").mode
        'max'
    """

    def __init__(self, mode: str | None = None, patience: int = 10, min_delta: float = 0.0, relative: bool = False,
                 stopping_threshold: float | None = None, divergence_threshold: float | None = None,
                 baseline: float | None = None, start_from_epoch: int = 0, check_finite: bool = True, *,
                 monitor: str | None = None, restore_best_weights: bool = False):
        if monitor is not None and (not isinstance(monitor, str) or not monitor):
            raise ValueError(f"EarlyStopping(monitor={monitor!r}) is not allowed: name a metric such as 'val_loss'")
        if mode is None or mode == "auto":
            mode = "max" if monitor is not None and "acc" in monitor else "min"
        if mode not in ("min", "max"):
            # Keras' and Lightning's first argument is the monitor: EarlyStopping("val_acc") lands in mode here
            if isinstance(mode, str) and any(k in mode for k in ("loss", "acc", "val", "train", "_")):
                raise ValueError(f"EarlyStopping(mode={mode!r}) is not allowed: the first positional argument is "
                                 f"mode ('min', 'max' or None for auto), not the metric: write "
                                 f"EarlyStopping(monitor={mode!r})")
            raise ValueError(f"EarlyStopping(mode={_shown(mode)}) is not allowed: use 'min', 'max' or None (auto)")
        self.monitor, self.restore_best_weights = monitor, bool(restore_best_weights)
        for name, value in (("patience", patience), ("start_from_epoch", start_from_epoch)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"EarlyStopping({name}={value!r}) is not allowed: use an integer >= 0 (a number of "
                                 f"epochs)")
        patience, start_from_epoch = int(patience), int(start_from_epoch)
        delta = _real(min_delta)
        if delta is None or not math.isfinite(delta):
            raise ValueError(f"EarlyStopping(min_delta={_shown(min_delta)}) is not allowed: use a finite number >= 0 "
                             f"(the least change that counts as an improvement, e.g. 0.0 or 0.001)")
        if patience < 0 or not delta >= 0 or start_from_epoch < 0:
            raise ValueError(f"EarlyStopping(patience={patience}, min_delta={min_delta}, start_from_epoch="
                             f"{start_from_epoch}) is not allowed: use patience >= 0, min_delta >= 0 and "
                             f"start_from_epoch >= 0")
        # the values compared with the monitored metric: a number (a NaN would never fire) or None (off)
        given = {"stopping_threshold": stopping_threshold, "divergence_threshold": divergence_threshold,
                 "baseline": baseline}
        for name, value in given.items():
            number = _real(value)
            if value is not None and (number is None or not math.isfinite(number)):
                raise ValueError(f"EarlyStopping({name}={_shown(value)}) is not allowed: use a finite number or None")
            given[name] = number
        stopping_threshold, divergence_threshold, baseline = given.values()
        min_delta = delta
        self.mode, self.patience, self.min_delta, self.relative = mode, patience, min_delta, relative
        self.stopping_threshold, self.divergence_threshold = stopping_threshold, divergence_threshold
        self.baseline, self.start_from_epoch, self.check_finite = baseline, start_from_epoch, check_finite

    def _improves(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        delta = self.min_delta * abs(best) if self.relative else self.min_delta
        gain = best - value if self.mode == "min" else value - best
        return gain > delta

    def scan(self, history: Sequence[float], memo: dict | None = None
             ) -> tuple[bool, str, float | None, int | None, int]:
        """Walk ``history``; return (stop, reason, best value, index of best, consecutive non-improving count).

        ``memo``: a dict the caller keeps for a series that only grows (every value but the last one fixed). The
        walk over all values but the last is stored there and resumed on the next call, so that a call costs
        O(new values) instead of O(len(history)); the result is the same as a walk from the start."""
        if memo is not None:
            return self._scan_resumed(history, memo)
        return self._walk(history, 0, len(history), None, None, 0)

    def _scan_resumed(self, history: Sequence[float], memo: dict) -> tuple:
        fixed = len(history) - 1  # the last value may still change: walked every call, never stored
        if memo.get("n", 0) > max(fixed, 0):
            memo.clear()  # a shorter series: not the one walked before
        if "stopped" in memo:
            return memo["stopped"]
        n, best, best_i, wait = memo.get("n", 0), memo.get("best"), memo.get("best_i"), memo.get("wait", 0)
        if fixed > n:
            head = self._walk(history, n, fixed, best, best_i, wait)
            if head[0]:
                memo["stopped"] = head
                return head
            memo.update(n=fixed, best=head[2], best_i=head[3], wait=head[4])
            n, best, best_i, wait = fixed, head[2], head[3], head[4]
        return self._walk(history, n, len(history), best, best_i, wait)

    def _walk(self, history: Sequence[float], start: int, end: int, best: float | None, best_i: int | None,
              wait: int) -> tuple[bool, str, float | None, int | None, int]:
        """The scan of ``history[start:end]``, with the state a walk of ``history[:start]`` ended in."""
        better = (lambda a, b: a < b) if self.mode == "min" else (lambda a, b: a > b)
        for i in range(start, end):
            value = history[i]
            if not math.isfinite(value):
                if self.check_finite:
                    why = (" (a regression records no accuracy: monitor a loss)" if value != value and
                           str(getattr(self, "monitor", "")).endswith("_acc") else "")
                    return True, f"early stopping: monitored value is {value} at epoch {i + 1}{why}", best, best_i, wait
                if i < self.start_from_epoch:
                    continue
                wait += 1  # a NaN never improves anything
                if wait >= self.patience:
                    return True, (f"early stopping: no improvement for {wait} epoch{'s' * (wait != 1)} (last value "
                                  f"{value} at epoch {i + 1})"), best, best_i, wait
                continue
            if i < self.start_from_epoch:  # Keras: not monitored yet (the guards above still apply)
                continue
            if self.stopping_threshold is not None and better(value, self.stopping_threshold):
                return True, (f"early stopping: reached the stopping threshold {self.stopping_threshold:g} "
                              f"({value:.4g}) at epoch {i + 1}"), value, i, 0
            if self.divergence_threshold is not None and better(self.divergence_threshold, value):
                return True, (f"early stopping: diverged past {self.divergence_threshold:g} ({value:.4g}) "
                              f"at epoch {i + 1}"), best, best_i, wait
            if self._improves(value, best):
                best, best_i = value, i
                # Keras: the counter restarts only on values that beat both the best so far and the baseline
                wait = 0 if self.baseline is None or self._improves(value, self.baseline) else wait + 1
            else:
                wait += 1
                if wait >= self.patience:
                    below = (f" and never beat the baseline {self.baseline:g}" if self.baseline is not None
                             and not self._improves(best, self.baseline) else "")
                    return True, (f"early stopping: no improvement for {wait} epoch{'s' * (wait != 1)}{below} "
                                  f"(best {best:.4g} at epoch {best_i + 1})"), best, best_i, wait
        return False, "", best, best_i, wait

    def evaluate(self, history: Sequence[float]) -> tuple[bool, str]:
        stop, reason, *_ = self.scan(history)
        return stop, reason


class NonFinite:
    """Stop at once when the monitored loss is NaN or infinite."""

    def evaluate(self, history: Sequence[float]) -> tuple[bool, str]:
        if history and not math.isfinite(history[-1]):
            return True, f"non-finite loss ({history[-1]}) at epoch {len(history)}"
        return False, ""


class Divergence:
    """Stop at once when the loss exceeds ``factor`` times the best loss so far *and* its first value, or when it
    has stayed above ``factor`` times the loss an untrained model is expected to have (``expected``, e.g. ln C for
    cross-entropy over C classes) for ``window`` epochs in a row.

    The first rule's second condition keeps a loss that has fallen to 1e-5 from "diverging" on a harmless spike to
    1e-4: diverging means getting worse than where training started, fast. The second rule catches the run whose
    very first epoch already blew up (so nothing later looks worse than it) and that never comes back.
    """

    def __init__(self, factor: float = 10.0, expected: float | None = None, window: int = 3):
        factor = _finite("Divergence", "factor", factor, "a number > 1", lambda v: v > 1)
        if expected is not None:
            expected = _finite("Divergence", "expected", expected, "a finite number or None", lambda v: True)
        self.factor, self.expected, self.window = factor, expected, _count("Divergence", "window", window, 1)

    def evaluate(self, history: Sequence[float]) -> tuple[bool, str]:
        best = min(filter(math.isfinite, history[:-1]), default=None)  # C-level passes: the run's length counts
        if history and best is not None and history[-1] > self.factor * best and history[-1] > history[0]:
            return True, (f"diverged: loss {history[-1]:.4g} > {self.factor:g} x best {best:.4g} "
                          f"at epoch {len(history)}")
        if self.far_above_expected(history[-self.window:]) and len(history) >= self.window:
            return True, (f"diverged: loss {history[-1]:.4g} stayed above {self.factor:g} x the untrained model's "
                          f"{self.expected:.4g} for {self.window} epochs (epoch {len(history)})")
        return False, ""

    def far_above_expected(self, losses: Sequence[float]) -> bool:
        """True if every loss in ``losses`` is above ``factor`` x ``expected`` (False without an expectation)."""
        return (self.expected is not None and len(losses) > 0
                and all(v > self.factor * self.expected for v in losses))


class OverfitDetector:
    """The first epoch at which validation loss has risen for ``window`` consecutive evaluations while training
    loss fell over the same span; None if that never happened."""

    def __init__(self, window: int = 5):
        self.window = _count("OverfitDetector", "window", window, 1)

    def detect(self, train: Sequence[float], val: Sequence[float], start: int = 0) -> int | None:
        """The first such epoch (an index into both series) at or after ``start``, or None. A caller that feeds
        growing series every epoch passes where its last call stopped looking (the earlier epochs' answer cannot
        change), so that its cost per epoch does not grow with the run."""
        k = self.window
        for t in range(max(k, start), min(len(train), len(val))):
            val_rising = all(val[i] > val[i - 1] for i in range(t - k + 1, t + 1))
            if val_rising and train[t] < train[t - k]:
                return t
        return None


class GeneralizationLoss:
    """Prechelt's GL_alpha criterion (Prechelt 1998, "Early stopping - but when?", sec. 2.2): the generalization
    loss GL(t) = 100 * (E_va(t) / E_opt(t) - 1), with E_opt(t) the lowest validation loss up to epoch t, and stop
    at the first t with GL(t) > alpha (Prechelt's GL1 ... GL5 use alpha = 1 ... 5 percent). ``alpha`` is a finite
    number > 0 in percent (a NumPy scalar or 0-dim tensor too); a string or None is refused by name.

    Example:
        >>> GeneralizationLoss(alpha=5).evaluate([1.0, 0.8, 0.82, 0.85])
        (True, 'generalization loss: 6.2% above the best validation loss 0.8 (> 5%) at epoch 4')
    """

    def __init__(self, alpha: float = 5.0):
        number = _real(alpha)
        if number is None or not number > 0 or not math.isfinite(number):
            raise ValueError(f"GeneralizationLoss(alpha={_shown(alpha)}) is not allowed: use a finite number > 0 "
                             f"(percent)")
        self.alpha = number

    def value(self, history: Sequence[float]) -> float | None:
        """GL(t) in percent for the last value, or None before any finite value (or with a best of 0 or less)."""
        finite = [v for v in history if math.isfinite(v)]
        if not finite or not math.isfinite(history[-1]) or min(finite) <= 0:
            return None
        return 100.0 * (history[-1] / min(finite) - 1.0)

    def evaluate(self, history: Sequence[float]) -> tuple[bool, str]:
        gl = self.value(history)
        if gl is not None and gl > self.alpha:
            return True, (f"generalization loss: {gl:.1f}% above the best validation loss {min(history):.4g} "
                          f"(> {self.alpha:g}%) at epoch {len(history)}")
        return False, ""


@dataclass(frozen=True)
class CriterionSpec:
    """A stopping criterion as ``stop.criteria`` names it: ``build(stop_config)`` makes it; ``series`` is what the
    fit loop feeds it ("train_loss", "val_loss", "loss_monitor" = ``stop.loss_monitor``, "monitor" =
    ``stop.monitor``, "weights" = flattened weight snapshots); ``may_extend``: when it fires, ``stop.extra_epochs``
    more epochs at a lower rate may follow."""

    build: Callable[[object], object]
    series: str
    may_extend: bool = True
    description: str = ""


#: the stopping criteria by ``stop.criteria`` name (register more with :func:`register_criterion`)
CRITERIA: dict[str, CriterionSpec] = {}


def register_criterion(name: str, *, series: str, may_extend: bool = True, description: str = ""):
    """Decorator: register ``build(stop_config) -> criterion`` as the criterion called ``name``."""
    if series not in ("train_loss", "val_loss", "loss_monitor", "monitor", "weights"):
        raise ValueError(f"series={series!r} is not allowed: use train_loss, val_loss, loss_monitor, monitor or "
                         f"weights")

    def add(build: Callable[[object], object]) -> Callable[[object], object]:
        if name in CRITERIA:
            raise ValueError(f"stopping criterion {name!r} is already registered")
        CRITERIA[name] = CriterionSpec(build, series, may_extend, description)
        return build

    return add


@register_criterion("fixed", series="train_loss", may_extend=False, description="n epochs, lower the LR, m more")
def _fixed(cfg) -> FixedSchedule:
    return FixedSchedule(cfg.fixed_epochs, cfg.fixed_factor, cfg.fixed_more)


@register_criterion("loss_change", series="loss_monitor", description="% drop over a window below a threshold")
def _loss_change(cfg) -> LossChange:
    return LossChange(cfg.loss_threshold, cfg.loss_window)


@register_criterion("weight_change", series="weights", may_extend=False,
                    description="max weight change over a window below a threshold")
def _weight_change(cfg) -> WeightChange:
    return WeightChange(cfg.weight_threshold, cfg.weight_window, cfg.weight_relative)


@register_criterion("early_stopping", series="monitor", description="validation early stopping with patience")
def _early_stopping(cfg) -> EarlyStopping:
    return EarlyStopping("max" if cfg.monitor.endswith("acc") else "min", cfg.patience, cfg.min_delta,
                         cfg.min_delta_relative, cfg.stopping_threshold, cfg.divergence_threshold,
                         baseline=cfg.baseline, start_from_epoch=cfg.start_from_epoch, check_finite=cfg.check_finite)


@register_criterion("generalization_loss", series="val_loss",
                    description="Prechelt's GL_alpha: validation loss alpha % above its minimum")
def _generalization_loss(cfg) -> GeneralizationLoss:
    return GeneralizationLoss(cfg.gl_alpha)
