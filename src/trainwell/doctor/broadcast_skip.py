"""A skip connection that broadcasts: ``h + self.body(h)`` where the body ends in a width that is not the input's
(``nn.Linear(c, 1)`` where ``nn.Linear(c, c)`` was meant). Torch adds the (B, 1) output to every one of the C
features of h without a word, so the block runs, trains and checks, but its branch adds one number per example
to all features: the residual block (He et al. 2016, x + F(x) with F(x) of x's shape) has lost almost all of
its capacity.

Read on one eval-mode forward of 4 examples: every addition (``+``, ``+=``, ``torch.add``) of a module's output to
that module's own input (the same tensor object) whose output has a smaller shape that broadcasts to the
input's. A gate multiplied in (squeeze-and-excitation's (B, C, 1, 1)) or a value head's (B, 1) added to another
head's output (a dueling network's V + A) is not such an addition."""

from __future__ import annotations

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from trainwell.doctor.func_transforms import transformed
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import module_modes, restore_modes

NAME = "residual shapes"
_ADDS = {torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__, torch.Tensor.__radd__,
         torch.Tensor.__iadd__}


class _Adds(TorchFunctionMode):
    """Records additions of a module's output to that module's input whose shapes differ."""

    def __init__(self, outputs: dict[int, tuple[str, torch.Tensor, torch.Tensor]]):
        super().__init__()
        self.outputs, self.found = outputs, []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if transformed():  # a torch.func transform's per-example pass: not read
            return func(*args, **(kwargs or {}))
        kwargs = kwargs or {}
        if func in _ADDS and len(args) >= 2 and all(isinstance(a, torch.Tensor) for a in args[:2]):
            for out, other in (args[:2], args[1::-1]):
                seen = self.outputs.get(id(out))
                if seen is not None and seen[1] is out and seen[2] is other and out.shape != other.shape \
                        and out.dim() == other.dim() and out.numel() < other.numel() \
                        and torch.broadcast_shapes(out.shape, other.shape) == other.shape:
                    self.found.append((seen[0], tuple(out.shape), tuple(other.shape)))
        return func(*args, **kwargs)


def broadcast_skips(model: nn.Module, x: torch.Tensor | Inputs) -> list[tuple[str, tuple, tuple]]:
    """(module name, its output's shape, its input's shape) of each module whose output is added to its own input
    by broadcasting, read on a forward of 4 examples of ``x``."""
    outputs: dict[int, tuple[str, torch.Tensor, torch.Tensor]] = {}

    def keep(name: str):
        def hook(module, args, out):
            if args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor) \
                    and out.is_floating_point():
                outputs[id(out)] = (name, out, args[0])
        return hook

    hooks = [m.register_forward_hook(keep(name)) for name, m in model.named_modules() if name]
    modes = module_modes(model)
    mode = _Adds(outputs)
    try:
        model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]), mode:
            call(model, x[:4])
    finally:
        for h in hooks:
            h.remove()
        restore_modes(modes)
    return list(dict.fromkeys(mode.found))


def broadcast_skip_verdict(model: nn.Module, x: torch.Tensor | Inputs) -> Verdict | None:
    """A warning naming the branch whose output is broadcast onto its input; None when there is none."""
    found = broadcast_skips(model, x)
    if not found:
        return None
    name, small, big = found[0]
    small, big = (", ".join(map(str, ("B", *shape[1:]))) for shape in (small, big))
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return Verdict(NAME, "warn", f"the output of '{name}', shape ({small}), is added to its own input of shape "
                   f"({big}) by broadcasting{more}", "a residual branch returns its input's shape (x + F(x))",
                   f"'{name}' ends in a width the skip does not have, so torch adds its output to every feature: "
                   f"make it return its input's shape (({big}) here: nn.Linear(c, c), not nn.Linear(c, 1)), as a "
                   "residual block's body must (He et al. 2016)")
