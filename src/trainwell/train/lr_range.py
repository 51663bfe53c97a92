"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural Networks", sec. 3.3;
the exponential form popularised by fastai's ``lr_find``): train for a few hundred steps while the learning rate
grows exponentially from ``start`` to ``end``, record the loss, stop once it explodes, and read a good rate off
the curve.

The suggestion is read off the smoothed curve by a rule (:data:`RULES`): ``minimum/10`` and ``minimum/3`` (a tenth or
a third of the rate at the smoothed minimum; beyond the minimum the loss rises: too high), ``steepest`` (where the
loss falls fastest) or ``valley`` (fastai's: halfway along the longest falling stretch). Every rule's reading of
the curve is kept in ``candidates``. Measured against a 5-rate grid on four configs (benchmarks/RESULTS.md section
23), only the minimum's fraction came within a point of the grid's best everywhere, and only when the fraction
followed the schedule: :func:`rule_for` (a third under one-cycle or cosine, a tenth otherwise; ``lr-find`` uses
it). The model, the optimizer and torch's global random state are restored afterwards: the test changes
nothing.

Example:
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(512, 4)
    >>> y = (x[:, 0] > 0).long()  # labels the inputs predict: the loss has a descent to find
    >>> model = nn.Linear(4, 2)
    >>> result = lr_range_test(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, steps=50)
    >>> 1e-7 < result.suggestion < 10
    True
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.data.labels import as_class_labels
from trainwell.errors import ParameterError, TrainwellError
from trainwell.nn.modes import module_modes, restore_modes
from trainwell.train.batches import (
    as_tensor,
    as_tensors,
    check_batch_keys,
    is_array,
    is_in_memory,
    loader_generators,
    split_batch,
)
from trainwell.train.learners import ModuleLearner, class_scores, named_loss

RULES = ("valley", "steepest", "minimum/10", "minimum/3")
DEFAULT_RULE = "minimum/10"  # with no schedule named (lr-find reads the config's: see rule_for)
ANNEALED = ("onecycle", "cosine")  # schedules that bring the rate down from its peak during training


def rule_for(schedule: str) -> str:
    """The rule ``lr-find`` uses for ``optim.schedule``, chosen by measurement (``benchmarks/lr_rule.py``;
    benchmarks/RESULTS.md section 23): under a schedule that anneals the rate from its peak (one-cycle, Smith &
    Topin 2019, warms up then anneals; cosine, Loshchilov & Hutter 2017) the peak may be a third of the rate at
    the smoothed minimum; a constant, stepped or plateau-driven rate trains at a tenth of it (fastai's
    ``minimum``)."""
    return "minimum/3" if schedule in ANNEALED else "minimum/10"


@dataclass
class LRRange:
    """The test's curve and its reading."""

    lrs: list[float]
    losses: list[float]  # raw per-step losses
    smoothed: list[float]  # bias-corrected exponential moving average (beta = 0.98)
    suggestion: float  # the rate the rule reads off the smoothed curve
    steepest: float  # the rate where the smoothed loss falls fastest (per unit of log lr)
    min_lr: float  # the rate at the smoothed minimum
    stopped: str  # why the test ended
    notes: list[str] = field(default_factory=list)
    rule: str = DEFAULT_RULE  # which rule gave the suggestion (see RULES)
    candidates: dict[str, float] = field(default_factory=dict)  # every rule's reading of the same curve

    def as_dict(self) -> dict:
        return {"suggestion": self.suggestion, "rule": self.rule, "candidates": self.candidates,
                "steepest": self.steepest, "min_lr": self.min_lr,
                "stopped": self.stopped, "notes": self.notes, "lrs": self.lrs, "losses": self.losses,
                "smoothed": self.smoothed}


def lr_range_test(model: nn.Module, optimizer: torch.optim.Optimizer, x, y=None,
                  loss_fn: str | Callable = F.cross_entropy, *, start: float = 1e-7, end: float = 10.0,
                  steps: int = 100, batch_size: int = 100, diverge: float = 4.0, beta: float = 0.98, seed: int = 0,
                  rule: str = DEFAULT_RULE, batch_keys: tuple[str, str] | None = None) -> LRRange:
    """Run the exponential LR range test on ``(x, y)`` and return the curve and the suggested rate.

    Args:
        x, y: the data in the forms :class:`~trainwell.train.trainer.Trainer` takes: tensors or NumPy arrays
            (``x`` and ``y``), an ``(x, y)`` pair or a dict of two arrays as ``x`` alone, or an iterable of
            ``(x, y)`` or dict batches such as a ``DataLoader`` as ``x`` alone (its batches are taken in its order,
            again from its start when it runs out; ``batch_size`` is then the loader's). With one of
            :data:`~trainwell.train.learners.LOSSES` (the default ``F.cross_entropy`` among them), integer labels
            of any dtype are cast to int64, and a model that returns a tuple, dict or dataclass is read for its
            class scores (:func:`~trainwell.train.learners.class_scores`); any other ``loss_fn`` receives the
            model's output and the targets as they are.
        loss_fn: a callable ``loss_fn(output, targets)`` or a loss name (``"cross_entropy"``, ``"hinge"``,
            ``"mse"``).
        start, end: the first and last learning rate (the schedule is ``start * (end/start) ** (i/(steps-1))``).
        steps: training steps, an integer >= 10 (mini-batches drawn from a seeded permutation, cycling over the
            data).
        diverge: stop once the smoothed loss exceeds ``diverge`` x its minimum (or is not finite); > 1.
        beta: smoothing factor of the loss's moving average, in [0, 1) (0: no smoothing).
        rule: how the suggestion is read off the curve, one of :data:`RULES` (see :func:`suggest`).
        batch_keys: ``(input_key, target_key)`` of dict batches (or a dict of two arrays) whose keys are not among
            the names the Trainer knows, as ``Trainer(..., batch_keys=...)`` takes them.

    The model's weights and buffers, its train/eval mode, the optimizer's state, torch's global random state
    and a loader's own ``generator`` are restored afterwards.

    Raises:
        ParameterError: ``start`` not > 0, ``end`` not > ``start``, ``steps`` not an integer >= 10, ``diverge``
            not > 1, ``beta`` outside [0, 1), or an unknown ``rule`` (a ``ValueError``; the message names the
            argument and what is allowed).
        TypeError: data in a form the Trainer does not take, or ``y`` beside a loader.
        ValueError: no examples, or inputs and labels of different lengths.
    """
    _check_arguments(start=start, end=end, steps=steps, diverge=diverge, beta=beta, rule=rule)
    learner = ModuleLearner(model, optimizer, loss_fn)  # the Trainer's reading of the loss and the inputs
    loss_fn, named = learner.loss_fn, named_loss(learner.loss_fn)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    batches = _batch_source(x, y, named, batch_size, seed, learner, check_batch_keys(batch_keys, "lr_range_test"))
    model_state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(optimizer.state_dict())
    modes = module_modes(model)  # each module's own mode, put back afterwards
    lrs, losses, smoothed = [], [], []
    avg, best, stopped = 0.0, math.inf, f"reached the last rate {end:g}"
    model.train()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for i in range(steps):
                lr = start * (end / start) ** (i / (steps - 1))
                for group in optimizer.param_groups:
                    group["lr"] = lr
                xb, yb = batches.next()
                out = model(xb.to(device))
                loss = loss_fn(class_scores(out) if named else out, yb.to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                value = float(loss.detach())
                lrs.append(lr)
                losses.append(value)
                if not math.isfinite(value):
                    stopped = f"the loss became {value} at lr {lr:.3g}"
                    break
                avg = beta * avg + (1 - beta) * value
                s = avg / (1 - beta ** (i + 1))
                smoothed.append(s)
                best = min(best, s)
                if i > steps // 10 and s > diverge * best:
                    stopped = f"the loss exploded ({s:.3g} > {diverge:g} x its minimum {best:.3g}) at lr {lr:.3g}"
                    break
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(opt_state)
        restore_modes(modes)
        batches.restore()
    return read_curve(lrs[:len(smoothed)], losses, smoothed, stopped, rule)


MIN_STEPS = 10  # fewer points leave no curve to read once its first tenth and its explosion are trimmed


def _real(name: str, value, allowed: str) -> float:
    """``value`` as a float if it is a real number (not a bool), else a one-line error saying what is allowed."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(name, value, f"is not allowed: use {allowed}")
    return float(value)


def _check_arguments(*, start, end, steps, diverge, beta, rule) -> None:
    """Refuse, in one line naming the argument and what is allowed, a test that could only fail or mislead: a
    ``beta`` of 1 divides by 1 - beta**t = 0, a ``diverge`` of 1 or less "explodes" at the first check."""
    if rule not in RULES:
        raise ParameterError("rule", rule, f"is not allowed: use one of {', '.join(RULES)}")
    first = _real("start", start, "a number > 0 (the first learning rate, e.g. 1e-7)")
    if not (math.isfinite(first) and first > 0):
        raise ParameterError("start", start, "is not allowed: use a finite number > 0 (the first learning rate, e.g. "
                                             "1e-7)")
    last = _real("end", end, f"a finite number > start={start}")
    if not (math.isfinite(last) and last > first):
        raise ParameterError("end", end, f"is not allowed with start={start}: use a finite number > start")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < MIN_STEPS:
        raise ParameterError("steps", steps, f"is not allowed: use an integer >= {MIN_STEPS}")
    if not _real("diverge", diverge, "a number > 1") > 1:
        raise ParameterError("diverge", diverge, "is not allowed: use a number > 1 (stop once the smoothed loss "
                                                 "exceeds diverge x its minimum; 4 by default)")
    if not 0 <= _real("beta", beta, "a number in [0, 1)") < 1:
        raise ParameterError("beta", beta, "is not allowed: use a number in [0, 1) (the smoothing of the loss's "
                                           "moving average; 0 smooths nothing, 0.98 by default)")


class _InMemory:
    """Batches of ``batch_size`` rows from a seeded permutation of ``(x, y)``, a new permutation each pass."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.perm, self.pos = torch.randperm(len(x), generator=self.generator), 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pos + self.batch_size > len(self.perm) and self.pos > 0:
            self.perm, self.pos = torch.randperm(len(self.x), generator=self.generator), 0
        idx = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return self.x[idx], self.y[idx]

    def restore(self) -> None:
        pass


class _Loader:
    """A loader's batches in its own order, from its start again when it runs out; its generators restored."""

    def __init__(self, loader, named: bool, learner: ModuleLearner, keys: tuple[str, str] | None = None):
        self.loader, self.named, self.learner, self.keys = loader, named, learner, keys
        self.generators = loader_generators(loader)
        self.saved = [g.get_state() for g in self.generators]
        self.it, self.checked = None, False

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        batch = next(self.it, None) if self.it is not None else None
        if batch is None:
            self.it = iter(self.loader)
            batch = next(self.it, None)
            if batch is None:
                raise ValueError("lr_range_test: the loader yielded no batches (an empty dataset, or drop_last=True "
                                 "with fewer examples than one batch): give it data with examples")
        xb, yb = split_batch(batch, "lr_range_test", self.keys)
        xb, yb = as_tensor(xb, "lr_range_test inputs"), as_tensor(yb, "lr_range_test targets")
        if len(xb) != len(yb):
            raise ValueError(f"lr_range_test: a batch holds {len(xb)} inputs but {len(yb)} targets")
        if not self.checked:
            self.learner.check_inputs(xb, "lr_range_test")
            self.checked = True
        return xb, as_class_labels(yb, "y") if self.named else yb

    def restore(self) -> None:
        for g, state in zip(self.generators, self.saved, strict=True):
            g.set_state(state)


def _batch_source(x, y, named: bool, batch_size: int, seed: int, learner: ModuleLearner,
                  keys: tuple[str, str] | None = None):
    """Where the test's batches come from, for data in any form the Trainer takes (see :func:`lr_range_test`)."""
    if y is None and not is_array(x):
        if not is_in_memory(x):
            if isinstance(x, (tuple, list)) and len(x) == 2:
                raise TypeError(f"lr_range_test: x is a pair of {type(x[0]).__name__} and {type(x[1]).__name__}: "
                                f"give tensors or NumPy arrays, as lr_range_test(model, optimizer, x, y)")
            if isinstance(x, (torch.Tensor, np.ndarray, str, bytes)) or not isinstance(x, Iterable):
                raise TypeError(f"lr_range_test takes x and y as tensors or NumPy arrays, an (x, y) pair, or an "
                                f"iterable of (x, y) batches such as a DataLoader; got {type(x).__name__}")
            return _Loader(x, named, learner, keys)
        x, y = as_tensors(x, "lr_range_test", keys)
    elif y is None:
        raise TypeError(f"lr_range_test got inputs ({type(x).__name__}) without targets: call "
                        f"lr_range_test(model, optimizer, x, y) or lr_range_test(model, optimizer, loader)")
    elif not is_array(x):
        raise TypeError(f"lr_range_test got targets beside a {type(x).__name__}: pass a loader alone "
                        f"(lr_range_test(model, optimizer, loader)), or x and y as tensors or NumPy arrays")
    else:
        x, y = as_tensor(x, "lr_range_test inputs"), as_tensor(y, "lr_range_test targets")
    if len(x) != len(y):
        raise ValueError(f"lr_range_test got {len(x)} inputs but {len(y)} targets: give one target per input")
    if len(x) == 0:
        raise ValueError("lr_range_test got no examples (x and y are empty): give it the training data")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ParameterError("batch_size", batch_size, "is not allowed: use an integer >= 1")
    learner.check_inputs(x, "lr_range_test")
    return _InMemory(x, as_class_labels(y, "y") if named else y, batch_size, seed)


def _trimmed(n: int) -> slice:
    """The part of a curve the rules read: without the first tenth (the moving average is still settling) and,
    as fastai does, without the last 5 points (the explosion that stopped the test)."""
    head = max(1, n // 10)
    tail = 5 if n - head > 15 else 0
    return slice(head, n - tail)


def steepest(lrs: list[float], smoothed: list[float]) -> float:
    """The rate where the smoothed loss falls fastest per unit of log lr (fastai's ``steep``), searched before the
    minimum on the trimmed curve (central differences)."""
    cut = _trimmed(len(smoothed))
    i_min = min(range(len(smoothed)), key=smoothed.__getitem__)
    lo, hi = cut.start, min(i_min, cut.stop - 1)
    if hi - lo < 2:
        return lrs[i_min]
    slopes = {i: (smoothed[i + 1] - smoothed[i - 1]) / math.log(lrs[i + 1] / lrs[i - 1]) for i in range(lo, hi)}
    return lrs[min(slopes, key=slopes.__getitem__)]


def valley(lrs: list[float], smoothed: list[float]) -> float:
    """fastai's ``valley`` rule (Mueller, fastai 2.4, 2021): on the trimmed smoothed curve, find the longest run
    of points whose losses fall monotonically (the longest strictly decreasing subsequence, by dynamic
    programming), from its first point to its last, and take the point halfway along it (in steps, hence in
    log lr: the grid is exponential)."""
    cut = _trimmed(len(smoothed))
    losses, rates = smoothed[cut], lrs[cut]
    n = len(losses)
    if n < 2:
        return lrs[min(range(len(smoothed)), key=smoothed.__getitem__)]
    longest = [1] * n
    best_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[i] > longest[best_end]:
            best_end = i
    best_start = best_end - longest[best_end]
    third = (best_end - best_start) / 3
    return rates[max(0, best_start + int(third) + int(third / 2))]


def minimum_rule(lrs: list[float], smoothed: list[float], divide: float) -> float:
    """The rate at the smoothed minimum divided by ``divide`` (fastai's ``minimum`` uses 10)."""
    return lrs[min(range(len(smoothed)), key=smoothed.__getitem__)] / divide


def suggest(lrs: list[float], smoothed: list[float], rule: str = DEFAULT_RULE) -> float:
    """The rate ``rule`` (one of :data:`RULES`) reads off a smoothed range-test curve."""
    if rule == "valley":
        return valley(lrs, smoothed)
    if rule == "steepest":
        return steepest(lrs, smoothed)
    if rule in ("minimum/10", "minimum/3"):
        return minimum_rule(lrs, smoothed, float(rule.split("/")[1]))
    raise ParameterError("rule", rule, f"is not allowed: use one of {', '.join(RULES)}")


def zero_from(losses: list[float], n: int) -> int | None:
    """The step from which the raw loss sits at 0 (at most 1e-6 of its first value) up to step ``n - 1``, the end
    of the curve; None when it does not end there (or a loss is negative: 0 is then no floor)."""
    if n < 2 or losses[0] <= 0 or any(v < 0 for v in losses[:n]):
        return None
    floor = 1e-6 * losses[0]
    z = n
    while z > 0 and losses[z - 1] <= floor:
        z -= 1
    return z if z <= n - 2 else None  # it reached 0 and stayed there (two steps at least)


def read_curve(lrs: list[float], losses: list[float], smoothed: list[float], stopped: str,
               rule: str = DEFAULT_RULE) -> LRRange:
    """The suggestion from a recorded curve by ``rule``, with every rule's reading of the same curve in
    ``candidates`` (for comparison), the steepest point and the minimum.

    When the raw loss reaches 0 and stays there to the end, nothing is learned past that point (a zero loss has
    zero gradients, so the higher rates were never tried on the model): the rules read the curve up to the last
    step before it, and a note says so.
    """
    if rule not in RULES:
        raise ParameterError("rule", rule, f"is not allowed: use one of {', '.join(RULES)}")
    notes = []
    z = zero_from(losses, len(smoothed))
    read = len(smoothed) if z is None else z
    if read < 5:
        if z is not None:
            raise TrainwellError(f"the raw loss reached 0 after {z} steps (at lr {lrs[z]:.3g}) and stayed there: "
                                 f"the curve has no descent to read; lower the test's start rate, or check that the "
                                 f"task is not trivial (labels leaking into the inputs)")
        raise TrainwellError(f"the range test stopped after {len(smoothed)} steps ({stopped}): lower its start rate")
    if z is not None:
        notes.append(f"the raw loss reached 0 at lr {lrs[z]:.3g} and stayed there (a zero loss trains nothing, so "
                     f"higher rates were not tested): the curve is read up to lr {lrs[z - 1]:.3g}, where the loss "
                     f"was still falling")
    head_lrs, head = lrs[:read], smoothed[:read]
    i_min = min(range(read), key=head.__getitem__)
    if z is None and i_min >= read - 1:
        notes.append("the loss was still falling at the last rate: the suggestion may be low; raise `end`")
    if head[i_min] > 0.98 * head[0]:
        notes.append("the loss never fell clearly below its start: check the model and data first")
    candidates = {r: suggest(head_lrs, head, r) for r in RULES}
    if candidates[rule] < lrs[0]:
        notes.append(f"the suggestion {candidates[rule]:.3g} lies below the first rate tested ({lrs[0]:.3g}), "
                     f"where the loss was lowest: it was never tried; lower `start` to see the curve fall")
    return LRRange(lrs=lrs, losses=losses, smoothed=smoothed, suggestion=candidates[rule],
                   steepest=candidates["steepest"], min_lr=head_lrs[i_min], stopped=stopped, notes=notes, rule=rule,
                   candidates=candidates)
