"""Activations called as functions (``F.relu(x)``, ``torch.tanh(x)``, ``x.sigmoid()``) seen by the monitors.

A model written with functional activations has no ``nn.ReLU`` module to hook, so the dead-unit and saturation
statistics (Glorot & Bengio 2010; cs231n's "dead ReLUs") would never look at it. On an observed step a
:class:`torch.overrides.TorchFunctionMode` sees every such call made during the model's forward pass and hands its
output to the monitor as if a module had produced it, named after the weighted layer that fed it
(``"F.relu after fc1"``). Only calls made by a user's own module count: the ones inside torch's modules
(``nn.ReLU.forward`` calls ``F.relu``, which its forward hook already reads; a Transformer layer's internal
activation) do not. :func:`calls_functions` says whether a model has any module of its own.

Example:
    >>> import torch, torch.nn.functional as F
    >>> from torch import nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 2)
    ...     def forward(self, x):
    ...         return self.fc2(F.relu(self.fc1(x)))
    >>> seen = []
    >>> net = Net()
    >>> with FunctionalActivations(net, lambda name, kind, out: seen.append((name, kind))):
    ...     _ = net(torch.randn(3, 4))
    >>> seen
    [('F.relu after fc1', 'ReLU')]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from trainwell.doctor.func_transforms import transformed

#: the functions recorded, and the module kind whose statistics they get
KINDS: dict[Callable, str] = {
    F.relu: "ReLU", F.relu_: "ReLU", torch.relu: "ReLU", torch.relu_: "ReLU", torch.Tensor.relu: "ReLU",
    torch.Tensor.relu_: "ReLU", F.leaky_relu: "LeakyReLU", F.tanh: "Tanh", torch.tanh: "Tanh",
    torch.Tensor.tanh: "Tanh", F.sigmoid: "Sigmoid", torch.sigmoid: "Sigmoid", torch.Tensor.sigmoid: "Sigmoid",
}
#: how each kind is named in verdicts
NAMES = {"ReLU": "F.relu", "LeakyReLU": "F.leaky_relu", "Tanh": "F.tanh", "Sigmoid": "F.sigmoid"}
_FEEDERS = (nn.Linear, nn.modules.conv._ConvNd, nn.Embedding, nn.EmbeddingBag)  # what a name says came before


def _torch_module(module: nn.Module) -> bool:
    return type(module).__module__.startswith("torch.")


def calls_functions(model: nn.Module) -> bool:
    """Whether ``model`` has a module whose class is not torch's own (a user's ``forward`` may call ``F.relu``)."""
    return any(not _torch_module(m) for m in model.modules())


class FunctionalActivations(TorchFunctionMode):
    """While active, call ``record(name, kind, output)`` for each functional activation in ``model``'s forward
    passes that build a graph (training forwards; every forward with ``graph_only=False``); ``name`` names the
    weighted layer (Linear/Conv) that ran last before it. Enter and exit it like any mode; its hooks on ``model``
    live as long as it does."""

    def __init__(self, model: nn.Module, record: Callable[[str, str, torch.Tensor], None], graph_only: bool = True):
        super().__init__()
        self.model, self.record, self.graph_only = model, record, graph_only
        self._last, self._count = "input", {}
        self._running: list[nn.Module] = []  # the modules whose forward is running, innermost last (the model first)
        self._hooks: list = []

    def __enter__(self):
        self._hooks = []
        for name, m in self.model.named_modules():
            self._hooks += [m.register_forward_pre_hook(self._push), m.register_forward_hook(self._pop)]
            if isinstance(m, _FEEDERS):
                self._hooks.append(m.register_forward_hook(self._layer(name)))
        return super().__enter__()

    def _push(self, module, args) -> None:
        if module is self.model:  # a new forward pass of the model: names start again
            self._last, self._count, self._running = "input", {}, []
        self._running.append(module)

    def _pop(self, module, args, out) -> None:
        if self._running and self._running[-1] is module:
            self._running.pop()

    def __exit__(self, *exc):
        for h in self._hooks:
            h.remove()
        self._hooks = []
        return super().__exit__(*exc)

    def _layer(self, name: str):
        def hook(module, args, out) -> None:
            self._last = name
        return hook

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if transformed():  # a torch.func transform's per-example pass: not read
            return func(*args, **(kwargs or {}))
        out = func(*args, **(kwargs or {}))
        kind = KINDS.get(func)
        if kind is not None and self._running and isinstance(out, torch.Tensor) and (
                out.requires_grad or not self.graph_only) and not _torch_module(self._running[-1]):
            name = f"{NAMES[kind]} after {self._last}"
            n = self._count[name] = self._count.get(name, 0) + 1
            self.record(name if n == 1 else f"{name} #{n}", kind, out)
        return out
