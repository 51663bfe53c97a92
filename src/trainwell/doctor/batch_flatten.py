"""A forward that flattens the batch axis into the features: ``torch.flatten(h)`` without ``start_dim`` (or
``h.view(-1)``, ``h.reshape(1, -1)``) turns a (B, C, H, W) batch into one vector of B*C*H*W numbers. Where the
next Linear was sized to fit that vector (in_features = B*C*H*W for the B the user tried), the forward runs on
that batch size only and every example's output depends on the whole batch; any other batch (a smaller last
batch, a validation batch, the checks' sub-batches) raises a shape error. This reading traces the forward for
such a reshape of a tensor whose first axis holds the B examples and, where the forward also fails on half the
batch, names it: flatten from dim 1 (``torch.flatten(h, 1)``, ``nn.Flatten()``, ``h.view(len(h), -1)``)."""

from __future__ import annotations

import math
import os
import sys
import traceback

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from trainwell.doctor.func_transforms import transformed
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import kept_modes
from trainwell.train.uncompiled import uncompiled

#: trainwell's own source directory: a reshape called from it is a hook's, not the model's
_OWN = os.path.dirname(os.path.dirname(os.path.abspath(__file__))).replace("\\", "/") + "/"
NAME = "batch independence"
LOOP_NAME = "loop: batch independence"
_RESHAPES = {torch.flatten: "torch.flatten", torch.Tensor.flatten: ".flatten", torch.Tensor.view: ".view",
             torch.Tensor.reshape: ".reshape", torch.reshape: "torch.reshape"}


class _BatchFlattens(TorchFunctionMode):
    """While active, record (the call, its input shape, where in the user's code) of each reshape whose input holds
    ``n`` examples along dim 0 and whose output keeps no axis of ``n`` at its front: 1-D, or (1, ...) from more."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.found = n, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if transformed():  # a torch.func transform's per-example pass: not read
            return func(*args, **(kwargs or {}))
        out = func(*args, **(kwargs or {}))
        name = _RESHAPES.get(func)
        if name is not None and args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor):
            t = args[0]
            if t.dim() >= 2 and t.shape[0] == self.n and t.numel() > self.n and out.numel() == t.numel() and \
                    (out.dim() == 1 or (out.shape[0] == 1 and out.dim() >= 2)):
                site = _user_site()
                if site is not None:
                    self.found.append((name, tuple(t.shape), tuple(out.shape), site))
        return out


def _user_site() -> str | None:
    """`` at file:line (code)`` of the innermost frame outside torch and trainwell, or ''; None when the reshape's
    innermost caller outside torch is trainwell's own code (a hook of the watch reading the input, flattened for
    its own use: not the model's forward)."""
    frames = [f for f in traceback.extract_stack(sys._getframe(2)) if "/torch/" not in f.filename.replace("\\", "/")]
    if frames and frames[-1].filename.replace("\\", "/").startswith(_OWN):
        return None
    for frame in reversed(frames):
        path = frame.filename.replace("\\", "/")
        if "/trainwell/" not in path:
            return f" at {path.rsplit('/', 1)[-1]}:{frame.lineno} ({(frame.line or '').strip()[:60]})"
    return ""


def flattened_batch(model: nn.Module, x: torch.Tensor | Inputs) -> Verdict | None:
    """A fail when the eval-mode forward on ``x`` reshapes its batch axis into the features (see the module) and
    raises on the first half of ``x``; None when no such reshape runs, or the forward runs on half the batch too
    (a reshape to (B*T,) and back, as token ids often take, is fine)."""
    n = len(x)
    if n < 2:
        return None
    with kept_modes(model), torch.no_grad():
        model.eval()
        mode = _BatchFlattens(n)
        with mode:
            call(model, x)
        if not mode.found:
            return None
        try:
            call(model, x[: n // 2])
        except RuntimeError as e:
            error = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        else:
            return None
    name, before, after, site = mode.found[0]
    how = "torch.flatten(h) without start_dim" if "flatten" in name else f"{name}({', '.join(map(str, after))})"
    return Verdict(NAME, "fail", f"{name}{site} turned the {n} examples' {before} into {after}: the forward runs on "
                   f"{n} examples only (on {n // 2}: {error})", "each example flattened on its own",
                   f"{how} flattens the batch axis too, mixing the examples into one input: flatten from dim 1, "
                   f"torch.flatten(h, 1) or nn.Flatten(), and size the next layer for one example's "
                   f"{math.prod(before[1:])} features")


def loop_flattened_batch(probe, forward: tuple | None) -> Verdict | None:
    """:func:`flattened_batch` under ``doctor.watch``, on the first observed training forward (``forward``: its
    (args, kwargs), the model called on one tensor), the probe's hooks recording nothing of it: a loop whose
    batches all hold the one batch size the model runs at (``drop_last=True``) trains it as one input."""
    if forward is None:
        return None
    args, kwargs = forward
    if len(args) != 1 or kwargs or not isinstance(args[0], torch.Tensor):
        return None
    probe.reading = True
    try:  # a compiled model read uncompiled: its compiled code would be traced again for the other batch size
        with uncompiled(probe.model):
            verdict = flattened_batch(probe.model, args[0].detach())
    except Exception:  # noqa: BLE001 - a model this reading cannot run gets no verdict from it
        return None
    finally:
        probe.reading = False
    return None if verdict is None else Verdict(LOOP_NAME, verdict.status, verdict.value, verdict.expected,
                                                verdict.advice)
