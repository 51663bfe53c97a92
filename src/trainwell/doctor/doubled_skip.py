"""Residual blocks whose skip path has a gain of 2 or more: the input added twice (``return x + self.body(x) + x``,
or ``out = x + h; return out + x``). A residual block computes x + F(x) (He et al. 2016): with every weight of its
body at 0, F(x) = 0 and the block returns its input. One that returns 2x its input then doubles the signal at
every block, 2^depth through a stack, whatever the initialization: it reads as an init problem (exploding
activations, a huge first loss), but no init scheme fixes it.

Each submodule that maps one floating-point tensor to a tensor of the same shape is run on the input it receives in
a forward of the model, as a copy with every parameter set to 0; where its output is k x its input, k a whole
number >= 2, the input is added k times. Only the innermost such modules are named (a stack of them returns
2^depth x its input). A module whose input is not finite (a watched run that diverged, read at its report) is run on
noise of its input's shape instead: the zeroed block's gain does not depend on what it is given."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from trainwell.doctor.forward_rows import on_first_rows
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import module_modes, restore_modes

NAME = "residual blocks"
#: modules tried at most (the first ones a forward reaches)
_MOST = 200


def doubled_skips(model: nn.Module, x: torch.Tensor | Inputs) -> list[tuple[str, int]]:
    """(name, k) of the innermost submodules that return k x their input (k >= 2) with their parameters at 0, read
    on a forward of 4 examples of ``x``."""
    return doubled_skips_on(model, lambda: call(model, x[:4]))


def doubled_skips_on(model: nn.Module, run: Callable[[], object]) -> list[tuple[str, int]]:
    """As :func:`doubled_skips`, on the forward ``run()`` makes (in eval mode, without gradients; every module's
    mode put back)."""
    seen: dict[str, tuple[nn.Module, torch.Tensor]] = {}
    hooks = []

    def keep(name: str):
        def hook(module, args, out):
            if name not in seen and len(seen) < _MOST and len(args) == 1 and isinstance(args[0], torch.Tensor) \
                    and isinstance(out, torch.Tensor) and args[0].is_floating_point() and out.shape == args[0].shape:
                seen[name] = (module, args[0].detach().clone())
        return hook

    for name, module in model.named_modules():
        params = list(module.parameters())
        if name and params and not any(nn.parameter.is_lazy(p) for p in params):
            hooks.append(module.register_forward_hook(keep(name)))
    modes = module_modes(model)
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            model.eval()
            run()
    finally:
        for h in hooks:
            h.remove()
        restore_modes(modes)
    found = {}
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, (module, given) in seen.items():
            if not bool(torch.isfinite(given).all()):  # a run diverged before it (read at a watch's report): the
                given = torch.randn(given.shape, generator=noise).to(given)  # zeroed block is read on noise instead
            zeroed = copy.deepcopy(module).eval()
            for p in zeroed.parameters():
                p.zero_()
            out = zeroed(given).double()
            given = given.double()
            power = float((given * given).sum())
            if power <= 0:
                continue
            gain = float((out * given).sum()) / power
            if not math.isfinite(gain):
                continue
            k = round(gain)
            if k >= 2 and abs(gain - k) < 1e-3 and float((out - k * given).norm()) <= 1e-4 * k * power ** 0.5:
                found[name] = k
    return [(n, k) for n, k in found.items() if not any(o.startswith(n + ".") for o in found)]


def doubled_skip_verdict(found: list[tuple[str, int]] | None) -> Verdict | None:
    """A fail naming the blocks that add their input more than once; None when there are none."""
    if not found:
        return None
    name, k = found[0]
    more = f" (and {len(found) - 1} more: {', '.join(n for n, _ in found[1:4])}{'...' if len(found) > 4 else ''})" \
        if len(found) > 1 else ""
    total = 1
    for _, gain in found:
        total *= gain
    through = f", {total:.3g}x through all {len(found)}" if len(found) > 1 else ""
    return Verdict(NAME, "fail", f"'{name}'{more} returns {k}x its input when its weights are all 0{through}",
                   "a residual block returns its input when its body is zero (x + body(x))",
                   f"the input is added {'twice' if k == 2 else f'{k} times'} in '{name}' (x + body(x) + x, or "
                   "out = x + h; out + x): return x + body(x) once; the exploding activations and the large "
                   "first loss follow from it, not from the initialization")


def defer_to_skips(verdicts: list[Verdict], found: Verdict | None) -> list[Verdict]:
    """The initialization's verdicts (variance propagation, initial loss) point at the doubled skip when there is
    one: re-initializing does not remove a gain of 2 per block."""
    if found is None:
        return verdicts
    bound = ("variance propagation", "initial loss")
    return [type(v)(v.check, v.status, v.value, v.expected, f"a skip path adds the input twice: fix "
                    f"'{NAME}' first ({found.value.split(' returns')[0]}); the initialization is not the cause")
            if v.check in bound and v.status in ("warn", "fail") else v for v in verdicts]


def loop_doubled_skips(probe, forward: tuple | None) -> Verdict | None:
    """``doctor.watch``'s reading: the blocks that add their input more than once, run on 4 examples of the first
    observed training forward (``forward``: its (args, kwargs)); None when there are none or it cannot run."""
    if forward is None:
        return None
    try:
        found = on_first_rows(probe, forward, lambda run: doubled_skips_on(probe.model, run))
    except Exception:  # noqa: BLE001 - a model this reading cannot run gets no verdict from it
        return None
    verdict = doubled_skip_verdict(found)
    return None if verdict is None else Verdict("loop: " + NAME, verdict.status, verdict.value, verdict.expected,
                                                verdict.advice)
