"""Tensors a module keeps as plain attributes and its forward reads: ``self.pe = torch.zeros(T, d)``, a positional
encoding or a fixed mask, instead of ``self.register_buffer("pe", ...)``. A plain attribute is not the module's
state: ``model.to("cuda")``, ``.half()`` and ``.double()`` leave it where and as it was (the first forward on the
GPU raises "Expected all tensors to be on the same device"; a float64 table silently promotes the activations it
is added to), and ``state_dict()`` leaves it out of the checkpoint. On the CPU in float32 nothing shows it.

Read on one eval-mode forward of 4 examples: the tensors of 1 or more dimensions held in a module's ``__dict__``
(not its parameters or buffers, not computed with gradients) that any torch function of the forward is given;
named only where the tensor's device, or its floating-point dtype, already differs from the weights': a
plain attribute that matches them (a mask the forward caches on its input's device) is left alone."""

from __future__ import annotations

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from trainwell.doctor.func_transforms import transformed
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import module_modes, restore_modes

NAME = "buffers registered"


class _Reads(TorchFunctionMode):
    """Records which of the watched tensors (by id) a torch function is given."""

    def __init__(self, watched: dict[int, tuple[str, torch.Tensor]]):
        super().__init__()
        self.watched, self.read = watched, {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if transformed():  # a torch.func transform's per-example pass: not read
            return func(*args, **(kwargs or {}))
        for a in (*args, *(kwargs or {}).values()):
            seen = self.watched.get(id(a)) if isinstance(a, torch.Tensor) else None
            if seen is not None and seen[1] is a:
                self.read[seen[0]] = a
        return func(*args, **(kwargs or {}))


def plain_tensors(model: nn.Module) -> dict[int, tuple[str, torch.Tensor]]:
    """The tensors of 1 or more dimensions kept as plain attributes of the model's modules, by id: (dotted name,
    tensor)."""
    found = {}
    for prefix, module in model.named_modules():
        for key, value in vars(module).items():
            if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter) and value.dim() >= 1 \
                    and value.grad_fn is None:
                found[id(value)] = (f"{prefix}.{key}" if prefix else key, value)
    return found


def read_plain_tensors(model: nn.Module, x: torch.Tensor | Inputs) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor) of each plain tensor attribute the forward reads, on 4 examples of ``x``."""
    watched = plain_tensors(model)
    if not watched:
        return []
    modes = module_modes(model)
    mode = _Reads(watched)
    try:
        model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]), mode:
            call(model, x[:4])
    finally:
        restore_modes(modes)
    return list(mode.read.items())


def _misfits(t: torch.Tensor, weights: torch.Tensor) -> list[str]:
    """What of a plain tensor already differs from the weights: its device, or its floating-point dtype."""
    off = ["device"] if t.device != weights.device else []
    if t.is_floating_point() and weights.is_floating_point() and t.dtype != weights.dtype:
        off.insert(0, "dtype")
    return off


def unregistered_verdict(model: nn.Module, x: torch.Tensor | Inputs) -> Verdict | None:
    """A warning naming a plain tensor attribute the forward reads whose device or floating-point dtype already
    differs from the weights' (a float64 table beside float32 weights, a CPU mask beside CUDA weights); None when
    there is none (a plain attribute that matches them is left alone: a mask cached in the forward is one)."""
    weights = next((p for p in model.parameters() if p.is_floating_point()), None)
    if weights is None:
        return None
    found = [(n, t) for n, t in read_plain_tensors(model, x) if _misfits(t, weights)]
    if not found:
        return None
    name, t = found[0]
    off = " and ".join(f"{what} {getattr(t, what)}" for what in _misfits(t, weights)).replace("torch.", "")
    more = f" (and {len(found) - 1} more: {', '.join(n for n, _ in found[1:4])})" if len(found) > 1 else ""
    key = name.rsplit(".", 1)[-1]
    return Verdict(NAME, "warn", f"'{name}', a tensor of shape {tuple(t.shape)} the forward reads, is a plain "
                   f"attribute with {off}, not the weights' {str(weights.dtype).replace('torch.', '')} on "
                   f"{weights.device}{more}", "tensors a module reads are parameters or buffers, moved and cast "
                   "with the model",
                   f"model.to(device), .half() and state_dict() leave a plain tensor attribute out (a float64 "
                   f"table promotes what it is added to; on the GPU the forward raises a device error): register it "
                   f"in __init__ with self.register_buffer('{key}', tensor) (persistent=False keeps it out of "
                   f"checkpoints)")
