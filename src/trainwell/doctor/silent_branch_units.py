"""ReLU units fed by a residual branch that starts silent: a normalization layer whose scale (affine weight) is
initialized at zero, so that its residual block is the identity at init (``zero_init_residual``; Goyal et al. 2017,
section 5.1), outputs exactly 0 for every example until the scale grows. A layer that reads that branch (a
squeeze-and-excitation gate after the block's last BatchNorm, Hu et al. 2018) then gets the same input for every
example: each unit's pre-activation is its own bias, and a ReLU unit with a negative bias starts dead, with no
gradient to its weights (their input is 0) or to its bias (the ReLU is off). That is the zero init's doing, not a
bias initialized too negative or an init scale far off; the dead-unit readings name it.

Example:
    >>> import torch
    >>> from torch import nn
    >>> norm = nn.BatchNorm1d(4); _ = nn.init.zeros_(norm.weight)
    >>> model = nn.Sequential(nn.Linear(3, 4), norm, nn.Linear(4, 2), nn.ReLU())
    >>> constant_feeder(model, torch.randn(8, 3), "3")
    '2'
"""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor.activations import _zero_scaled_norms as zero_scaled_norms
from trainwell.doctor.forward import _training_forward
from trainwell.doctor.functional_activations import calls_functions
from trainwell.doctor.inputs import Inputs, call
from trainwell.nn.modes import module_modes, restore_modes

__all__ = ["constant_feeder", "silent_branch_advice", "zero_scaled_norms", "within_block"]

_PREFIX = "after "


def _feeder_name(layer: str) -> str | None:
    """The module a functional ReLU's name says fed it (``F.relu after blocks.0.se.fc1 #2`` -> its path)."""
    if _PREFIX not in layer:
        return None
    return layer.split(_PREFIX, 1)[1].split(" #", 1)[0]


def constant_feeder(model: nn.Module, x: torch.Tensor | Inputs, layer: str) -> str | None:
    """The name of the module that feeds the ReLU ``layer`` (a name of the dead-unit readings: ``F.relu after X``
    names X; an ``nn.ReLU`` module, the module without children called just before it) when that module's input
    is the same for every example of ``x`` on each of its calls; None otherwise, or when it cannot be read. One
    forward in the mode of the first training step, without gradients; the modes are restored."""
    calls: list[tuple[str, torch.Tensor | None]] = []
    leaves = [(n, m) for n, m in model.named_modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(lambda mod, args, out, n=n: calls.append(
        (n, args[0] if args and isinstance(args[0], torch.Tensor) else None))) for n, m in leaves]
    modes = module_modes(model)
    try:
        _training_forward(model)
        with torch.no_grad():
            call(model, x)
    except Exception:  # noqa: BLE001 - the reading then names no cause
        return None
    finally:
        for h in hooks:
            h.remove()
        restore_modes(modes)
    feeder = _feeder_name(layer) if calls_functions(model) else None
    if feeder is None:
        order = [n for n, _ in calls]
        if layer not in order or order.index(layer) == 0:
            return None
        feeder = order[order.index(layer) - 1]
    inputs = [inp for n, inp in calls if n == feeder]
    if not inputs or any(inp is None or inp.dim() == 0 or len(inp) < 2 or not inp.is_floating_point()
                         for inp in inputs):
        return None
    return feeder if all(bool((inp - inp[:1]).abs().amax() == 0) for inp in inputs) else None


def silent_branch_advice(norms: list[str], feeder: str) -> str:
    """The advice of a dead-unit reading whose units read a branch behind the zero-initialized scale of
    ``norms``, through the layer ``feeder``."""
    shown = ", ".join(norms[:3]) + (f" (+{len(norms) - 3} more)" if len(norms) > 3 else "")
    return (f"these units read a residual branch that outputs exactly 0 at init by design (the zero-initialized "
            f"scale of {shown}, Goyal et al. 2017), so each unit outputs its own bias and those with a negative "
            f"bias start dead, with no gradient until that scale grows: if they should learn from the start, "
            f"give {feeder}'s bias a small positive init (nn.init.constant_({feeder}.bias, 0.01)), or read the "
            f"branch before that normalization")


def within_block(site: str, norms: list[str], order: dict[str, int]) -> list[str]:
    """The zero-scaled normalization layers among ``norms`` whose parent module (the residual block, not the model
    itself) also holds the layer of the activation site ``site`` (``F.relu after blocks.0.se.fc1`` or a module
    path), registered after the normalization (``order``: each module's place in ``named_modules()``, which
    follows the order a block's ``__init__`` builds its layers: a layer inside the branch before it is not read)."""
    path = _feeder_name(site) or site
    return [n for n in norms if "." in n and path.startswith(n.rpartition(".")[0] + ".") and
            order.get(path, -1) > order.get(n, len(order))]
