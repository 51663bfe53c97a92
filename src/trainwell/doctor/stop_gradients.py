"""Stop-gradients held at their values while a gradient check moves the weights.

A healthy loss may detach a tensor of its own graph on purpose: an actor-critic's advantage ``ret - v.detach()``
(Mnih et al. 2016), SimSiam's and BYOL's ``cos(p, z.detach())`` (Chen & He 2021; Grill et al. 2020), a TD target
``r + gamma * q_next.detach()``. Autograd treats such a tensor as a constant; centred differences re-run the loss
and see it move with the weights, so the two disagree although the backward is right. Holding every detached
tensor at its value at the centre, as autograd does, makes the differences measure the gradient autograd computes.
Only tensors of several elements are held: a detached *scalar* added to the loss is the bug (an auxiliary loss that
trains nothing), and is left moving, so the check still names it."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.overrides import TorchFunctionMode

from trainwell.doctor.func_transforms import transformed


class _Detaches(TorchFunctionMode):
    """Records the ``Tensor.detach()`` results of one evaluation (``values`` None), or replaces the k-th detached
    tensor of later evaluations by the k-th recorded one when they match in shape and dtype and it has several
    elements."""

    def __init__(self, values: list[torch.Tensor] | None = None):
        super().__init__()
        self.recording = values is None
        self.values: list[torch.Tensor] = [] if values is None else values
        self.held = 0
        self._k = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if transformed():  # a torch.func transform's per-example pass: not read
            return func(*args, **(kwargs or {}))
        out = func(*args, **(kwargs or {}))
        if func is torch.Tensor.detach and isinstance(out, torch.Tensor):
            k, self._k = self._k, self._k + 1
            if self.recording:
                self.values.append(out.clone())
            elif k < len(self.values) and self.values[k].shape == out.shape and self.values[k].dtype == out.dtype \
                    and out.numel() > 1:
                self.held += 1
                return self.values[k]
        return out


def held_stop_gradients(objective: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor] | None:
    """``objective`` with the tensors its evaluation detaches (several elements each) held at their values now; None
    when it detaches none."""
    with torch.no_grad(), _Detaches() as record:
        objective()
    values = record.values
    if not any(v.numel() > 1 for v in values):
        return None

    def held(*args, **kwargs) -> torch.Tensor:
        with _Detaches(values):
            return objective(*args, **kwargs)

    return held


HELD_NOTE = ("with the .detach()ed tensors held at their values, as autograd holds them (stop-gradients: a critic's "
             "baseline in an advantage, SimSiam's target branch, a TD target)")
