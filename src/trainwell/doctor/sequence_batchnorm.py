"""``nn.BatchNorm1d(C)`` applied to a Linear layer's (B, T, C) output. A Linear maps the last dimension, so its
features are last; ``BatchNorm1d`` takes a 3-D input as (B, C, L) and normalizes dimension 1, here the T
positions. Where T differs from C torch raises "running_mean should contain T elements not C", which does not say
why; where T equals C (a square window, 16 steps of 16 features) it runs, normalizing each position over the
batch and the features instead of each feature over the batch and the positions (Ioffe & Szegedy 2015 normalize
each feature), and nothing else flags it.

Read on one eval-mode forward of 4 examples (a forward that raises still shows what the BatchNorm was given):
each ``BatchNorm1d`` whose 3-D input is the output of an ``nn.Linear``, the same tensor object."""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import module_modes, restore_modes

NAME = "batchnorm axis"


def linear_fed_batchnorms(model: nn.Module, x: torch.Tensor | Inputs) -> list[tuple[str, str, tuple]]:
    """(BatchNorm1d name, Linear name, the input's shape) for each ``BatchNorm1d`` given a Linear's 3-D output."""
    made: dict[int, tuple[str, torch.Tensor]] = {}
    found: list[tuple[str, str, tuple]] = []

    def linear(name: str):
        def hook(module, args, out):
            if isinstance(out, torch.Tensor) and out.dim() == 3:
                made[id(out)] = (name, out)
        return hook

    def norm(name: str):
        def hook(module, args):
            t = args[0] if args else None
            seen = made.get(id(t)) if isinstance(t, torch.Tensor) else None
            if seen is not None and seen[1] is t:
                found.append((name, seen[0], tuple(t.shape)))
        return hook

    hooks = [m.register_forward_hook(linear(n)) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    hooks += [m.register_forward_pre_hook(norm(n)) for n, m in model.named_modules()
              if isinstance(m, nn.BatchNorm1d) and not isinstance(m, nn.modules.batchnorm._LazyNormBase)]
    if len(hooks) < 2:
        for h in hooks:
            h.remove()
        return []
    modes = module_modes(model)
    try:
        model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            call(model, x[:4])
    except Exception:  # noqa: BLE001, S110 - the BatchNorm's input was seen before it raised
        pass
    finally:
        for h in hooks:
            h.remove()
        restore_modes(modes)
    return list(dict.fromkeys(found))


def _advice(bn: str, lin: str, shape: tuple) -> str:
    return (f"'{bn}' (nn.BatchNorm1d) is given the (B, T, C) output of nn.Linear '{lin}', shape "
            f"(B, {shape[1]}, {shape[2]}): BatchNorm1d reads a 3-D input as (B, C, L) and normalizes dimension 1, "
            f"the {shape[1]} positions, not the {shape[2]} features; apply it to h.transpose(1, 2) and transpose "
            f"back, or use nn.LayerNorm({shape[2]})")


def batchnorm_axis_verdict(model: nn.Module, x: torch.Tensor | Inputs, crash: Verdict | None
                           ) -> tuple[Verdict | None, Verdict | None]:
    """(a warning naming a BatchNorm1d that normalizes a Linear's positions, or None; ``crash`` with that cause
    added to its advice when the forward raised there)."""
    found = linear_fed_batchnorms(model, x)
    if not found:
        return None, crash
    bn, lin, shape = found[0]
    if crash is not None and crash.status == "fail" and "running_mean should contain" in str(crash.value):
        return None, type(crash)(crash.check, crash.status, crash.value, crash.expected,
                                 f"{_advice(bn, lin, shape)}; {crash.advice}")
    if shape[1] != shape[2]:
        return None, crash
    return Verdict(NAME, "warn", f"'{bn}' normalizes dimension 1 of '{lin}''s (B, T, C) output "
                   f"(B, {shape[1]}, {shape[2]})", "each feature normalized over the batch and the positions",
                   _advice(bn, lin, shape)), crash
