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
it). The model and optimizer are restored afterwards: the test changes nothing.

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
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.errors import ParameterError, TrainwellError

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


def lr_range_test(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                  loss_fn: Callable = F.cross_entropy, *, start: float = 1e-7, end: float = 10.0, steps: int = 100,
                  batch_size: int = 100, diverge: float = 4.0, beta: float = 0.98, seed: int = 0,
                  rule: str = DEFAULT_RULE) -> LRRange:
    """Run the exponential LR range test on ``(x, y)`` and return the curve and the suggested rate.

    Args:
        start, end: the first and last learning rate (the schedule is ``start * (end/start) ** (i/(steps-1))``).
        steps: training steps (mini-batches drawn from a seeded permutation, cycling over the data).
        diverge: stop once the smoothed loss exceeds ``diverge`` x its minimum (or is not finite).
        beta: smoothing factor of the loss's moving average.
        rule: how the suggestion is read off the curve, one of :data:`RULES` (see :func:`suggest`).

    Raises:
        ParameterError: ``start``/``end``/``steps``/``rule`` out of range.
    """
    if rule not in RULES:
        raise ParameterError("rule", rule, f"is not allowed: use one of {', '.join(RULES)}")
    if not 0 < start < end or not math.isfinite(end):
        raise ParameterError("end", end, f"is not allowed with start={start}: use 0 < start < end")
    if steps < 10:
        raise ParameterError("steps", steps, "is not allowed: use at least 10")
    model_state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    generator = torch.Generator().manual_seed(seed)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    lrs, losses, smoothed = [], [], []
    avg, best, stopped = 0.0, math.inf, f"reached the last rate {end:g}"
    perm, pos = torch.randperm(len(x), generator=generator), 0
    model.train()
    try:
        for i in range(steps):
            lr = start * (end / start) ** (i / (steps - 1))
            for group in optimizer.param_groups:
                group["lr"] = lr
            if pos + batch_size > len(perm) and pos > 0:
                perm, pos = torch.randperm(len(x), generator=generator), 0
            idx = perm[pos:pos + batch_size]
            pos += batch_size
            loss = loss_fn(model(x[idx].to(device)), y[idx].to(device))
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
        model.train(was_training)
    return read_curve(lrs[:len(smoothed)], losses, smoothed, stopped, rule)


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


def read_curve(lrs: list[float], losses: list[float], smoothed: list[float], stopped: str,
               rule: str = DEFAULT_RULE) -> LRRange:
    """The suggestion from a recorded curve by ``rule``, with every rule's reading of the same curve in
    ``candidates`` (for comparison), the steepest point and the minimum."""
    if rule not in RULES:
        raise ParameterError("rule", rule, f"is not allowed: use one of {', '.join(RULES)}")
    notes = []
    if len(smoothed) < 5:
        raise TrainwellError(f"the range test stopped after {len(smoothed)} steps ({stopped}): lower its start rate")
    i_min = min(range(len(smoothed)), key=smoothed.__getitem__)
    if i_min >= len(smoothed) - 1:
        notes.append("the loss was still falling at the last rate: the suggestion may be low; raise `end`")
    if smoothed[i_min] > 0.98 * smoothed[0]:
        notes.append("the loss never fell clearly below its start: check the model and data first")
    candidates = {r: suggest(lrs, smoothed, r) for r in RULES}
    return LRRange(lrs=lrs, losses=losses, smoothed=smoothed, suggestion=candidates[rule],
                   steepest=candidates["steepest"], min_lr=lrs[i_min], stopped=stopped, notes=notes, rule=rule,
                   candidates=candidates)
