"""A deep network with no nonlinearity between its layers: ``nn.Sequential(nn.Linear(8, 64), nn.Linear(64, 64),
nn.Linear(64, 2))``, or an activation whose result is thrown away (``F.relu(h)`` instead of ``h = F.relu(h)``).
Linear and convolutional layers compose to one affine map, so such a network has a linear model's capacity
whatever its depth and width (Goodfellow, Bengio & Courville 2016, Deep Learning, section 6.1: XOR needs a
nonlinearity). It trains and its gradients check; it only fails to fit what a linear model cannot, which reads as
inputs that do not help (the input-independent baseline) or a model too small.

Read in eval mode on up to 8 floating-point examples: the output of the last Linear/Conv layer the forward runs is
compared at two inputs a, b and at points on their line, t a + (1 - t) b; an affine map gives
t f(a) + (1 - t) f(b) there to round-off. Named only when 2 or more Linear/Conv layers run and the output moves
with the input (a dead network's constant output is affine too, but for another reason)."""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import module_modes, restore_modes

NAME = "nonlinearity"
_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
             nn.ConvTranspose3d)
#: line points compared (inside and outside the segment between a and b)
_POINTS = (0.3, -1.0, 2.0)


def affine_layers(model: nn.Module, x: torch.Tensor) -> list[str] | None:
    """The Linear/Conv layers (by name, in the order they ran) when the last one's output is an affine function of
    the model's floating-point input ``x`` through 2 or more of them; None otherwise (also for several inputs)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or len(x) < 2:
        return None
    n = min(len(x), 8) // 2
    a, b = x[:n], x[n : 2 * n]
    ran: list[str] = []
    last: list[torch.Tensor] = []

    def hook(name: str):
        def keep(module, args, out):
            if isinstance(out, torch.Tensor):
                if name not in ran:
                    ran.append(name)
                last[:] = [out]
        return keep

    hooks = [m.register_forward_hook(hook(name)) for name, m in model.named_modules() if isinstance(m, _WEIGHTED)]
    modes = module_modes(model)
    try:
        model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):

            def f(z: torch.Tensor) -> torch.Tensor:
                last.clear()
                torch.manual_seed(0)
                model(z)
                return last[0].double() if last else None

            fa, fb = f(a), f(b)
            if fa is None or len(ran) < 2:
                return None
            scale = float(torch.maximum(fa.abs().max(), fb.abs().max()))
            moved = float((fa - fb).abs().max())
            if not scale > 0 or moved < 1e-3 * scale:
                return None  # a constant output: not the reading's case
            for t in _POINTS:
                got = f(t * a + (1 - t) * b)
                if got is None or got.shape != fa.shape:
                    return None
                if float((got - (t * fa + (1 - t) * fb)).abs().max()) > 1e-4 * scale * max(1.0, abs(t)):
                    return None
    finally:
        for h in hooks:
            h.remove()
        restore_modes(modes)
    return ran


def affine_verdict(model: nn.Module, x: torch.Tensor) -> Verdict | None:
    """A warning naming the layers of a network that computes an affine function of its input; None otherwise."""
    layers = affine_layers(model, x)
    if not layers:
        return None
    shown = ", ".join(f"'{n}'" for n in layers[:4]) + (f" and {len(layers) - 4} more" if len(layers) > 4 else "")
    return Verdict(NAME, "warn", f"the output of '{layers[-1]}' is an affine function of the input through "
                   f"{len(layers)} Linear/Conv layers ({shown})",
                   "a nonlinearity (ReLU, GELU, Tanh) between the layers",
                   "no activation acts between these layers (or its result is not used: write h = F.relu(h), not "
                   "F.relu(h); or it cancels out, as attention weights softmaxed over the queries and then averaged "
                   "over them): they compose to one linear map, a linear model's capacity whatever the depth "
                   "(Goodfellow et al. 2016, Deep Learning, 6.1); put an nn.ReLU() between them")


def defer_to_linear(verdicts: list[Verdict], linear: Verdict | None) -> list[Verdict]:
    """A failed or warned overfit or baseline follows from a network that is linear in its input: what a linear
    model cannot fit reads as inputs that do not help. Its advice names the 'nonlinearity' warning first."""
    if linear is None:
        return verdicts
    bound = ("overfit a tiny subset", "input-independent baseline")
    return [type(v)(v.check, v.status, v.value, v.expected, f"fix '{NAME}' first: the network is linear in its "
                    f"input ({linear.value.split(' through ')[1]}), so it fits only what a linear model fits")
            if v.check in bound and v.status in ("warn", "fail") and "first:" not in (v.advice or "") else v
            for v in verdicts]
