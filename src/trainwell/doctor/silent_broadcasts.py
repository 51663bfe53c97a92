"""Losses that broadcast an input against a target of another shape without a word from torch.

``F.mse_loss``, ``F.l1_loss`` and the Huber losses warn when a (B, 1) output meets (B,) targets; ``F.gaussian_nll_loss``
and ``F.poisson_nll_loss`` (``nn.GaussianNLLLoss``, ``nn.PoissonNLLLoss``) broadcast the pair to (B, B) silently:
every output is then fitted to every target in the batch, so each one learns the batch's mean and the loss still
falls. A :class:`~torch.overrides.TorchFunctionMode` sees their calls inside the user's own loss on the first
steps of a watched loop (and over one evaluation of it in ``doctor.check``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from trainwell.doctor.first_steps import FirstStepsReader
from trainwell.doctor.func_transforms import transformed

#: losses that broadcast their input and target without torch's "Using a target size" warning
SILENT_BROADCAST_LOSSES = {F.gaussian_nll_loss: "gaussian_nll_loss", F.poisson_nll_loss: "poisson_nll_loss"}


def widens(a: tuple, b: tuple) -> bool:
    """Whether shapes ``a`` and ``b`` broadcast to a shape larger than both ((B, 1) and (B,): (B, B), every output
    against every target); a scalar or a row broadcast into the other compares nothing wrongly."""
    try:
        return torch.broadcast_shapes(a, b).numel() > max(torch.Size(a).numel(), torch.Size(b).numel())
    except RuntimeError:  # shapes that cannot broadcast: torch raises its own error
        return False


def input_and_target(args: tuple, kwargs: dict | None) -> list:
    """A loss call's ``input`` and ``target``, given by position or by name."""
    given = list(args[:2]) + [None, None]
    return [given[0] if given[0] is not None else (kwargs or {}).get("input"),
            given[1] if given[1] is not None else (kwargs or {}).get("target")]


def widening_call(func, args: tuple, kwargs: dict | None) -> str | None:
    """A description of a silently broadcasting loss call whose input and target widen; else None."""
    name = SILENT_BROADCAST_LOSSES.get(func)
    if name is None:
        return None
    given = input_and_target(args, kwargs)
    if not all(isinstance(t, torch.Tensor) for t in given) or not widens(given[0].shape, given[1].shape):
        return None
    a, b = tuple(given[0].shape), tuple(given[1].shape)
    return f"F.{name} given input {a} and target {b}, broadcast to {tuple(torch.broadcast_shapes(a, b))}"


class _WideningCalls(TorchFunctionMode):
    """Records the first widening call of a silently broadcasting loss made while it is active."""

    def __init__(self):
        super().__init__()
        self.found: str | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if transformed():  # a torch.func transform's per-example pass: not read
            return func(*args, **(kwargs or {}))
        if self.found is None:
            self.found = widening_call(func, args, kwargs)
        return func(*args, **(kwargs or {}))


class SilentBroadcastReader(FirstStepsReader):
    """Reads the first steps of a watched loop for a silently broadcasting loss call; ``found`` describes it."""

    def __init__(self):
        super().__init__()
        self.found: str | None = None

    def _new_mode(self) -> _WideningCalls:
        return _WideningCalls()

    def _done(self) -> bool:
        return self.found is not None

    def _keep(self, mode: _WideningCalls) -> None:
        self.found = mode.found


#: observed steps a hand-written broadcast is read on before it is named
SIGN_STEPS = 3
#: at most this share of rows whose gradient takes the sign of (output - own target) under a broadcast loss
OWN_SIGN_SHARE = 0.75


def residual_signs(z: torch.Tensor, g: torch.Tensor | None, y) -> tuple[float, bool] | None:
    """On an observed step of a single-output regression (one output per row, floating-point targets of as many
    values, more than two distinct): the share of rows whose output gradient has the sign of (output - own
    target), and whether one threshold splits the gradient's signs by the output alone (every output below it
    pushed up, every one above pushed down). Any loss that falls as each output nears its own target gives a
    share of 1; a hand-written loss that broadcasts (B, 1) outputs against (B,) targets fits every output to
    every target, so each is pulled to one value (the batch's mean target under a squared error, a quantile of
    the targets under a pinball loss) whatever its own target."""
    if g is None or not isinstance(y, torch.Tensor) or not y.is_floating_point() or not z.is_floating_point() or \
            z.dim() == 0 or z.numel() != len(z) or y.numel() != z.numel() or g.shape != z.shape:
        return None
    zd, gd, yd = (t.detach().double().flatten().cpu() for t in (z, g, y))
    live = gd != 0
    if int(live.sum()) < 8 or len(yd.unique()) <= 2 or not bool(torch.isfinite(gd).all()):
        return None
    sign = gd[live].sign()
    own = float((sign == (zd - yd)[live].sign()).double().mean())
    by_output = sign[zd[live].argsort()]
    return own, bool((by_output[1:] >= by_output[:-1]).all())


class ResidualSigns:
    """The observed steps' :func:`residual_signs`; ``found`` describes a hand-written broadcast when on
    :data:`SIGN_STEPS` or more steps, all of them read, one threshold split the gradient's signs by the output
    alone and at most :data:`OWN_SIGN_SHARE` of the rows were pulled towards their own target."""

    def __init__(self):
        self.reads: list[tuple[float, bool] | None] = []

    def observe(self, z: torch.Tensor, g: torch.Tensor | None, y) -> None:
        if len(self.reads) < 64:
            self.reads.append(residual_signs(z, g, y))

    @property
    def found(self) -> str | None:
        if len(self.reads) < SIGN_STEPS or any(r is None or not r[1] or r[0] > OWN_SIGN_SHARE
                                               for r in self.reads):
            return None
        return (f"a hand-written loss: every output pulled to one value, not to its own target, on all "
                f"{len(self.reads)} observed steps")
