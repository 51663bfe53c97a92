"""The time budget of the costly pre-flight checks: on a large model they sample less rather than take minutes."""

from __future__ import annotations

from collections.abc import Callable

import torch

#: seconds a costly check may take on a large model before it samples less (a ResNet-18 on a 2-core CPU: a float64
#: forward of 4 images takes ~0.2 s, so every tensor at 5 coordinates would take minutes)
TIME_BUDGET_S = 10.0


def _within_budget(tensors: list, coords: int, objective: Callable, budget_s: float | None):
    """(tensors, coordinates per tensor, note) that fit the time budget: one objective is timed; each coordinate
    costs two. Fewer coordinates per tensor first (down to 1), then tensors evenly spread over depth (the first
    and last always), and the value says so."""
    import time

    budget = TIME_BUDGET_S if budget_s is None else budget_s
    tic = time.perf_counter()
    with torch.no_grad():
        objective()
    evals = max(int(budget / max(time.perf_counter() - tic, 1e-6)), 2)
    if 2 * coords * len(tensors) <= evals:
        return tensors, coords, ""
    per = max(1, evals // (2 * max(len(tensors), 1)))
    if 2 * per * len(tensors) <= evals:
        return tensors, per, f"; {per} coordinate(s) per tensor to fit {budget:g} s"
    keep = max(2, evals // 2)
    idx = sorted({round(i * (len(tensors) - 1) / (keep - 1)) for i in range(keep)}) if keep < len(tensors) else \
        list(range(len(tensors)))
    note = f"; {len(idx)} of {len(tensors)} tensors (spread over depth) to fit {budget:g} s"
    return [tensors[i] for i in idx], 1, note

