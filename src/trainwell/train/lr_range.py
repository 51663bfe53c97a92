"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural Networks", sec. 3.3;
the exponential form popularised by fastai's ``lr_find``): train for a few hundred steps while the learning rate
grows exponentially from ``start`` to ``end``, record the loss, stop once it explodes, and read a good rate off
the curve.

The suggestion is a tenth of the rate at the smoothed loss's minimum (beyond it the loss rises: too high; a tenth
of it is still on the steep descending part, a good maximum rate for one-cycle and constant schedules); the rate
of the steepest descent is reported beside it. The model and optimizer are restored afterwards: the test changes
nothing.

Example:
    >>> import torch
    >>> from torch import nn
    >>> x, y = torch.randn(512, 4), torch.randint(0, 2, (512,))
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


@dataclass
class LRRange:
    """The test's curve and its reading."""

    lrs: list[float]
    losses: list[float]  # raw per-step losses
    smoothed: list[float]  # bias-corrected exponential moving average (beta = 0.98)
    suggestion: float  # a tenth of the rate at the smoothed minimum
    steepest: float  # the rate where the smoothed loss falls fastest (per unit of log lr)
    min_lr: float  # the rate at the smoothed minimum
    stopped: str  # why the test ended
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"suggestion": self.suggestion, "steepest": self.steepest, "min_lr": self.min_lr,
                "stopped": self.stopped, "notes": self.notes, "lrs": self.lrs, "losses": self.losses,
                "smoothed": self.smoothed}


def lr_range_test(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                  loss_fn: Callable = F.cross_entropy, *, start: float = 1e-7, end: float = 10.0, steps: int = 100,
                  batch_size: int = 100, diverge: float = 4.0, beta: float = 0.98, seed: int = 0) -> LRRange:
    """Run the exponential LR range test on ``(x, y)`` and return the curve and the suggested rate.

    Args:
        start, end: the first and last learning rate (the schedule is ``start * (end/start) ** (i/(steps-1))``).
        steps: training steps (mini-batches drawn from a seeded permutation, cycling over the data).
        diverge: stop once the smoothed loss exceeds ``diverge`` x its minimum (or is not finite).
        beta: smoothing factor of the loss's moving average.

    Raises:
        ParameterError: ``start``/``end``/``steps`` out of range.
    """
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
    return read_curve(lrs[:len(smoothed)], losses, smoothed, stopped)


def read_curve(lrs: list[float], losses: list[float], smoothed: list[float], stopped: str) -> LRRange:
    """The suggestion from a recorded curve: a tenth of the rate at the smoothed minimum, and the steepest point
    before it (skipping the first tenth, where the average is still settling)."""
    notes = []
    if len(smoothed) < 5:
        raise TrainwellError(f"the range test stopped after {len(smoothed)} steps ({stopped}): lower its start rate")
    i_min = min(range(len(smoothed)), key=smoothed.__getitem__)
    skip = max(1, len(smoothed) // 10)
    slopes = [(smoothed[i + 1] - smoothed[i - 1]) / math.log(lrs[i + 1] / lrs[i - 1])
              for i in range(skip, max(skip + 1, i_min))] if i_min > skip + 1 else []
    i_steep = skip + min(range(len(slopes)), key=slopes.__getitem__) if slopes else i_min
    if i_min >= len(smoothed) - 1:
        notes.append("the loss was still falling at the last rate: the suggestion may be low; raise `end`")
    if smoothed[i_min] > 0.98 * smoothed[0]:
        notes.append("the loss never fell clearly below its start: check the model and data first")
    return LRRange(lrs=lrs, losses=losses, smoothed=smoothed, suggestion=lrs[i_min] / 10, steepest=lrs[i_steep],
                   min_lr=lrs[i_min], stopped=stopped, notes=notes)
