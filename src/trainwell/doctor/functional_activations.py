"""Activations called as functions (``F.relu(x)``, ``torch.tanh(x)``, ``x.sigmoid()``) seen by the monitors.

A model written with functional activations has no ``nn.ReLU`` module to hook, so the dead-unit and saturation
statistics (Glorot & Bengio 2010; cs231n's "dead ReLUs") would never look at it. On an observed step a
:class:`torch.overrides.TorchFunctionMode` sees every such call made during the model's forward pass and hands its
output to the monitor as if a module had produced it, named after the weighted layer that fed it
(``"F.relu after fc1"``). Used only for models with no activation modules at all (a module's own ``forward``
calls the same functions: both would count).

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

#: the functions recorded, and the module kind whose statistics they get
KINDS: dict[Callable, str] = {
    F.relu: "ReLU", F.relu_: "ReLU", torch.relu: "ReLU", torch.relu_: "ReLU", torch.Tensor.relu: "ReLU",
    torch.Tensor.relu_: "ReLU", F.leaky_relu: "LeakyReLU", F.tanh: "Tanh", torch.tanh: "Tanh",
    torch.Tensor.tanh: "Tanh", F.sigmoid: "Sigmoid", torch.sigmoid: "Sigmoid", torch.Tensor.sigmoid: "Sigmoid",
}
_WEIGHTED = (nn.Linear, nn.modules.conv._ConvNd)


class FunctionalActivations(TorchFunctionMode):
    """While active, call ``record(name, kind, output)`` for each functional activation in ``model``'s forward
    passes that build a graph (training forwards; every forward with ``graph_only=False``); ``name`` names the
    weighted layer (Linear/Conv) that ran last before it. Enter and exit it like any mode; its hooks on ``model``
    live as long as it does."""

    def __init__(self, model: nn.Module, record: Callable[[str, str, torch.Tensor], None], graph_only: bool = True):
        super().__init__()
        self.model, self.record, self.graph_only = model, record, graph_only
        self._depth, self._last, self._count = 0, "input", {}
        self._hooks: list = []

    def __enter__(self):
        self._hooks = [self.model.register_forward_pre_hook(self._enter_forward),
                       self.model.register_forward_hook(self._leave_forward)]
        self._hooks += [m.register_forward_hook(self._layer(name)) for name, m in self.model.named_modules()
                        if isinstance(m, _WEIGHTED)]
        return super().__enter__()

    def __exit__(self, *exc):
        for h in self._hooks:
            h.remove()
        self._hooks = []
        return super().__exit__(*exc)

    def _enter_forward(self, module, args) -> None:
        if self._depth == 0:
            self._last, self._count = "input", {}
        self._depth += 1

    def _leave_forward(self, module, args, out) -> None:
        self._depth = max(self._depth - 1, 0)

    def _layer(self, name: str):
        def hook(module, args, out) -> None:
            self._last = name
        return hook

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        kind = KINDS.get(func)
        if kind is not None and self._depth and isinstance(out, torch.Tensor) and (
                out.requires_grad or not self.graph_only):
            name = f"F.{kind.lower()} after {self._last}"
            n = self._count[name] = self._count.get(name, 0) + 1
            self.record(name if n == 1 else f"{name} #{n}", kind, out)
        return out
