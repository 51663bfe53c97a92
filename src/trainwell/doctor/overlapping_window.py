"""A forecaster's target window that overlaps its input window.

Sliding windows over a series cut ``x = s[t : t + W]`` and ``y = s[t + W : t + W + H]``; a target window started
k steps early, ``y = s[t + W - k : t + W + H - k]``, holds in its first k steps the last k steps of the input,
value for value. The model reads those answers and copies them: its training and validation losses fall below
what the forecast itself achieves, and nothing of it carries to the steps it must predict.

A sequence model trained on the next step (``y = s[t + 1 : t + W + 1]``, each output predicting the step after
the one it reads) has the same overlap by design: its output j reads the input up to step j and never the step
j + 1 its target holds. The reading tells them apart on the model itself, run on a few rows: for each target
step j that equals input step i, the input's step i alone is changed; an output j that moves reads its own answer.
"""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.inputs import Inputs, call, fields
from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import kept_modes

NAME = "targets vs inputs"
_ROWS = 8  # rows the model is run on
_MOVED = 1e-4  # an output moved: its change over its largest magnitude


def _overlap(x: torch.Tensor, y: torch.Tensor) -> int:
    """The largest k such that the first k target steps equal the input's last k steps on every row (0: none);
    steps that hold one value throughout (zeros) do not count."""
    for k in range(min(x.shape[1], y.shape[1]), 0, -1):
        head = y[:, :k]
        if torch.equal(head, x[:, x.shape[1] - k:]) and not bool((head == head.reshape(-1)[0]).all()):
            return k
    return 0


def overlapping_window(model: nn.Module, x: torch.Tensor | Inputs, y) -> Verdict | None:
    """Pre-flight: a warning when the first k steps of (n, H) floating-point targets ``y`` are the last k steps of
    an (n, W) floating-point input of ``x`` and the model's output at those steps reads them (an output of the
    targets' shape that moves when that input step alone changes); None otherwise, also when every target step
    equals an input step (the whole target is an input: :mod:`~trainwell.doctor.echoed_targets`)."""
    if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.dim() != 2 or y.shape[1] < 2:
        return None
    named = [(name, t) for name, t in fields(x) if t.is_floating_point() and t.dim() == 2 and len(t) == len(y)]
    found = next(((name, t, k) for name, t in named if (k := _overlap(t, y))), None)
    if found is None or (found[2] == y.shape[1] == found[1].shape[1]):
        return None
    name, series, k = found
    n, width = min(len(y), _ROWS), series.shape[1]
    base = series[:n].detach()

    def run(rows: torch.Tensor):
        batch = x[:n]
        if isinstance(batch, Inputs):
            kept = dict(batch.items())[name]
            batch = batch.map(lambda v: rows if v is kept else v)
        else:
            batch = rows
        with kept_modes(model), torch.no_grad():
            model.eval()
            return O.logits(call(model, batch))

    try:
        before = run(base)
        if before is None or before.shape != (n, y.shape[1]):
            return None
        scale = float(before.abs().max()) or 1.0
        spread = float(base.std()) or 1.0
        read = []
        for j in range(k):
            moved = base.clone()
            moved[:, width - k + j] += spread
            if float((run(moved)[:, j] - before[:, j]).abs().max()) > _MOVED * scale:
                read.append(j)
    except Exception:  # noqa: BLE001 - a model this reading cannot run gets no verdict from it
        return None
    if not read:
        return None
    where = f" ({name})" if isinstance(x, Inputs) else ""
    return Verdict(NAME, "warn", f"the first {k} of the {y.shape[1]} target steps are the input's last {k} steps"
                   f"{where}, value for value (y[:, :{k}] == x[:, -{k}:]), and the outputs at {len(read)} of them "
                   "read the very input step they must predict", "targets that start after the input window",
                   "the target window overlaps the input window: cut x = s[t : t + W] and y = s[t + W : t + W + H], "
                   "so that the model forecasts steps it has not read (else it copies them, and the loss on those "
                   "steps says nothing about the forecast)")
