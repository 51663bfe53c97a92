"""Which tensors a loss really depends on, and which of them the model does not own.

A layer kept in a plain Python list (``self.layers = [nn.Linear(...)]`` instead of ``nn.ModuleList``) or a tensor
made trainable by hand (``self.w = torch.randn(..., requires_grad=True)``) is used in ``forward`` but is not
registered: ``model.parameters()`` does not list it, so the optimizer never updates it, ``.to(device)``,
``.double()`` and ``state_dict()`` skip it. The loss's autograd graph shows it: every trainable leaf the loss
depends on ends in an ``AccumulateGrad`` node that holds the tensor.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.layers = [nn.Linear(3, 3)]          # the bug
    ...         self.out = nn.Linear(3, 2)
    ...     def forward(self, x):
    ...         return self.out(self.layers[0](x))
    >>> net = Net()
    >>> unregistered(net, graph_leaves(net(torch.randn(4, 3)).sum()))
    ['layers[0].weight', 'layers[0].bias']
"""

from __future__ import annotations

import torch
from torch import nn


def graph_leaves(loss: torch.Tensor, limit: int = 200_000) -> list[torch.Tensor]:
    """The trainable leaf tensors ``loss`` depends on (works after ``backward()`` too: the graph's structure
    outlives its saved tensors). Walks at most ``limit`` nodes."""
    fn = getattr(loss, "grad_fn", None)
    if fn is None:
        return [loss] if isinstance(loss, torch.Tensor) and loss.requires_grad else []
    seen, stack, out = set(), [fn], []
    while stack and len(seen) < limit:
        f = stack.pop()
        if f is None or f in seen:
            continue
        seen.add(f)
        var = getattr(f, "variable", None)
        if var is not None:
            out.append(var)
        stack.extend(g for g, _ in f.next_functions)
    return out


def _container_names(model: nn.Module) -> dict[int, str]:
    """id(tensor) -> a readable name for tensors held in plain lists, tuples, dicts or attributes of the model's
    modules (where ``named_parameters`` does not look)."""
    names: dict[int, str] = {}

    def visit(value, name: str, depth: int = 0) -> None:
        if depth > 3:
            return
        if isinstance(value, nn.Module):
            for pname, p in value.named_parameters():
                names.setdefault(id(p), f"{name}.{pname}")
        elif isinstance(value, torch.Tensor):
            names.setdefault(id(value), name)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                visit(v, f"{name}[{i}]", depth + 1)
        elif isinstance(value, dict):
            for k, v in value.items():
                visit(v, f"{name}[{k!r}]", depth + 1)

    for mname, module in model.named_modules():
        for attr, value in vars(module).items():
            if attr.startswith("_") or attr == "training":
                continue
            visit(value, f"{mname}.{attr}" if mname else attr)
    return names


def unregistered(model: nn.Module, tensors: list[torch.Tensor]) -> list[str]:
    """Names of the trainable ``tensors`` that are not the model's registered parameters (empty if all are).
    Tensors the model does not hold anywhere (an input with ``requires_grad``, an outside tensor) are named by
    their shape."""
    own = {id(p) for p in model.parameters()}
    names = None
    out = []
    for t in tensors:
        if id(t) in own or not t.requires_grad:
            continue
        if names is None:
            names = _container_names(model)
        out.append(names.get(id(t), f"a tensor of shape {tuple(t.shape)} outside the model"))
    return out
