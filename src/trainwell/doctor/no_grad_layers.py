"""Layers a training forward runs without gradients: ``with torch.no_grad():`` around part of ``forward`` (also
around a ``torch.utils.checkpoint`` call) builds no graph there, so those layers and every layer before them
never receive a gradient, while the model's forward as a whole runs with gradients and the loss backpropagates.

Read on observed steps by forward pre-hooks: one on the watched model (is its forward one with gradients?) and
one on each submodule with parameters of its own (does it run without them inside that forward?). A reentrant
checkpointed segment runs its forward without gradients by design and again with them in ``backward()``: only
the layers that never receive a gradient are named, so a healthy one is not."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import torch
from torch import nn

#: the file of ``torch.utils.checkpoint``: a layer run from inside it is in a checkpointed segment
_CHECKPOINT_FILE = os.path.join("torch", "utils", "checkpoint.py")


def advice(checkpointed: bool) -> str:
    """What to do about layers cut off by ``torch.no_grad()``, for the watch's "every trainable parameter learns"
    and the pre-flight's "parameters registered" (``checkpointed``: around a ``torch.utils.checkpoint`` call)."""
    where = "around the torch.utils.checkpoint call" if checkpointed else "around part of the forward"
    return (f"torch.no_grad() {where} builds no graph there: the layers inside and every layer before them get no "
            "gradient and never learn; remove the no_grad" +
            (" (checkpointing alone already saves the activations' memory)" if checkpointed else "") +
            ", and freeze layers on purpose with requires_grad_(False)")


def _in_checkpoint(depth: int = 40) -> bool:
    """Whether the caller runs inside ``torch.utils.checkpoint`` (within ``depth`` frames)."""
    frame = sys._getframe(2)
    for _ in range(depth):
        if frame is None:
            return False
        if frame.f_code.co_filename.endswith(_CHECKPOINT_FILE):
            return True
        frame = frame.f_back
    return False


class NoGradLayers:
    """The submodules (by name) that ran without gradients inside a forward of the watched model with them, on
    the steps :meth:`attach` hooked; ``checkpointed``: those of them run from inside ``torch.utils.checkpoint``."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.checkpointed: set[str] = set()
        self._open: list[bool] = []  # the watched model's forwards under way: whether each has gradients

    def attach(self, model: nn.Module, hook: Callable[[Callable], Callable]) -> list:
        """Hooks for one observed step (``hook`` wraps each, as the probe's are); returns their handles."""
        self._open = []
        handles = [model.register_forward_pre_hook(hook(self._enter)),
                   model.register_forward_hook(hook(self._leave))]
        for name, module in model.named_modules():
            if name and next(module.parameters(recurse=False), None) is not None:
                handles.append(module.register_forward_pre_hook(hook(self._ran(name))))
        return handles

    def _enter(self, module, args) -> None:
        self._open.append(torch.is_grad_enabled())

    def _leave(self, module, args, out) -> None:
        if self._open:
            self._open.pop()

    def _ran(self, name: str):
        def pre(module, args) -> None:
            if self._open and self._open[-1] and not torch.is_grad_enabled():
                self.names.add(name)
                if name not in self.checkpointed and _in_checkpoint():
                    self.checkpointed.add(name)
        return pre

    def cut(self, starved: list[str]) -> tuple[list[str], bool]:
        """Of the parameters ``starved`` (names), those of layers that ran without gradients inside a training
        forward, and whether any of those layers ran inside ``torch.utils.checkpoint``."""
        layers = {n: n.rpartition(".")[0] for n in starved}
        cut = [n for n in starved if layers[n] in self.names]
        return cut, any(layers[n] in self.checkpointed for n in cut)


#: what the pre-flight's "parameters registered" says of layers run under torch.no_grad() inside the forward
CUT = "ran under torch.no_grad() inside the forward"
#: the pre-flight checks that follow from such layers: they train or differentiate with those layers cut off
_FOLLOWING = ("overfit a tiny subset", "input-independent baseline", "gradient check (data + L2)")


def defer(verdicts: list) -> list:
    """A failed overfit, baseline or gradient check follows from layers run under ``torch.no_grad()`` inside the
    forward (named by "parameters registered"): its advice names that first."""
    cut = next((v for v in verdicts if v.check == "parameters registered" and CUT in str(v.value)), None)
    if cut is None:
        return verdicts
    return [type(v)(v.check, v.status, v.value, v.expected, f"fix 'parameters registered' first: {cut.advice}")
            if v.check in _FOLLOWING and v.status in ("fail", "warn") else v for v in verdicts]


__all__ = ["CUT", "NoGradLayers", "advice", "defer"]
