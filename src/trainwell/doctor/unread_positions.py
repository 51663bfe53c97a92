"""Input positions the model never reads: a convolutional stack whose receptive field covers a few steps of the
input, followed by ``h[:, :, -1]`` (the last position, as a recurrent classifier reads its last state), or a slice
``x[..., :k]`` left from a debugging session. The model then sees only that window; whatever the labels depend on
outside it reads as inputs that do not help, or memorization, in the other checks.

Read in eval mode on up to 8 examples of a floating-point input of 3 or more dimensions, (B, C, L) or
(B, C, H, W): the gradient of the summed outputs with respect to the input; a position along a spatial axis (2 and
after) is unread where that gradient is exactly 0 for every example and channel while the input holds non-zero
values there (zero padding a mask hides is not counted). Named when half the positions of an axis or more are
unread."""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor import checkpointing
from trainwell.doctor import outputs as O
from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import module_modes, restore_modes

NAME = "receptive field"


def unread_positions(model: nn.Module, x: torch.Tensor) -> tuple[int, int, int, int, int] | None:
    """(axis, unread count, length, first read position, last read position) of the first spatial axis of
    ``x`` at least half of whose positions the output never reads; None when every axis is read (or ``x`` is not
    one floating-point tensor of 3+ dimensions)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 3:
        return None
    xs = x[: min(len(x), 8)].detach().clone().requires_grad_(True)
    modes = module_modes(model)
    try:
        model.eval()
        with torch.enable_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            out = O.logits(model(xs))
            if out is None or not out.requires_grad:
                return None
            (grad,) = checkpointing.input_gradients(model, out.sum(), [xs])
    finally:
        restore_modes(modes)
    if grad is None:
        return None
    g, v = grad.detach().abs(), xs.detach().abs()
    for axis in range(2, x.dim()):
        if x.shape[axis] < 8:
            continue
        others = [d for d in range(x.dim()) if d != axis]
        read = g.sum(dim=others) > 0
        present = v.sum(dim=others) > 0
        unread = int((~read & present).sum())
        if read.any() and unread * 2 >= x.shape[axis]:
            where = read.nonzero().flatten()
            return axis, unread, x.shape[axis], int(where[0]), int(where[-1])
    return None


def unread_verdict(model: nn.Module, x: torch.Tensor) -> Verdict | None:
    """A warning naming the share of the input's positions the output never reads; None when it reads them."""
    found = unread_positions(model, x)
    if found is None:
        return None
    axis, unread, length, lo, hi = found
    return Verdict(NAME, "warn", f"the output never reads {unread} of the input's {length} positions along "
                   f"dimension {axis} (it reads {lo}..{hi} only)", "every position reaches the output",
                   "the model sees only a window of its input: a convolution stack whose receptive field covers a "
                   "few steps, read at one position (h[:, :, -1]), or a slice of x; pool over every position "
                   "(h.mean(-1) or h.amax(-1)), add layers, strides or dilation, or remove the slice")


def defer_to_unread(verdicts: list[Verdict], unread: Verdict | None) -> list[Verdict]:
    """A failed or warned overfit or baseline names the unread positions first: the labels may depend on them."""
    if unread is None:
        return verdicts
    bound = ("overfit a tiny subset", "input-independent baseline")
    return [type(v)(v.check, v.status, v.value, v.expected, f"fix '{NAME}' first: {unread.value}")
            if v.check in bound and v.status in ("warn", "fail") and "first:" not in (v.advice or "") else v
            for v in verdicts]
