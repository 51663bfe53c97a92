"""A GroupNorm, LayerNorm or InstanceNorm layer that normalizes groups of one or two values.

These layers normalize each example on its own: GroupNorm over each group of C / G channels times the positions,
LayerNorm over its ``normalized_shape``, InstanceNorm over each channel's positions. A group of m values leaves m - 1
degrees of freedom after the mean is taken out and m - 2 after the scale: with m = 1 the normalized value is 0 and
the layer outputs its bias whatever its input (``nn.GroupNorm(64, 64)`` on the (N, 64) features of a dense layer,
meant as "one group per channel"; ``nn.LayerNorm(1)`` on a single output; InstanceNorm on a 1 x 1 map), so nothing
below it reaches the output, and its gradient is 0 up to round-off; with m = 2 the two values become exactly -1 and
+1, and only which one is larger passes on (as BatchNorm on a batch of 2, :mod:`~trainwell.doctor.batch_statistics`).
The count does not depend on the batch: one forward of a few examples reads it, in ``doctor.check`` and at a watched
loop's report.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from trainwell.doctor.forward_rows import on_first_rows
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import kept_modes

NAME = "normalized groups"
LOOP_NAME = "loop: normalized groups"
_NORMS = (nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


def values_per_group(module: nn.Module, x: torch.Tensor) -> int | None:
    """How many values each group of ``module`` normalizes on the (batched) input ``x``; None when unknown."""
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        return None
    if isinstance(module, nn.GroupNorm):
        return module.num_channels // module.num_groups * math.prod(x.shape[2:])
    if isinstance(module, nn.LayerNorm):
        return math.prod(module.normalized_shape)
    if isinstance(module, nn.modules.instancenorm._InstanceNorm):
        batched = x.dim() == module._get_no_batch_dim() + 1
        return math.prod(x.shape[2:]) if batched else None
    return None


def few_value_groups(model: nn.Module, forward: Callable[[], object]) -> dict[str, tuple[str, int]]:
    """{layer name: (its class name, values per group)} of the normalization layers that normalize 2 or fewer
    values per group on one eval-mode run of ``forward()`` (the model on a few examples); empty when none does, or
    when it cannot run."""
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, _NORMS)]
    if not layers:
        return {}
    found: dict[str, tuple[str, int]] = {}

    def read(name: str, module: nn.Module, args) -> None:
        m = values_per_group(module, args[0] if args else None)
        if m is not None and m <= 2 and name not in found:
            found[name] = (type(module).__name__, m)

    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: read(name, mod, args)) for name, m in layers]
    try:
        with kept_modes(model), torch.no_grad():
            model.eval()
            forward()
    except Exception:  # noqa: BLE001 - a model this reading cannot run gets no verdict from it
        return {}
    finally:
        for h in hooks:
            h.remove()
    return found


def check_norm_groups(model: nn.Module, x: torch.Tensor | Inputs) -> Verdict | None:
    """``doctor.check``'s reading on 4 examples of ``x``."""
    return norm_groups_verdict(few_value_groups(model, lambda: call(model, x[:4])))


def loop_norm_groups(probe, forward: tuple | None) -> Verdict | None:
    """``doctor.watch``'s reading on 4 examples of the first observed training forward (``forward``: its (args,
    kwargs)); None when there are none or it cannot run."""
    return on_first_rows(probe, forward, lambda run: norm_groups_verdict(few_value_groups(probe.model, run), LOOP_NAME))


#: the pre-flight checks whose failure a layer that erases its input explains
BOUND = ("initial loss", "gradient check (data loss)", "overfit a tiny subset", "dead units", "variance propagation",
         "input-independent baseline")


def defer_to_norm_groups(verdicts: list[Verdict], found: Verdict | None) -> list[Verdict]:
    """The fits and the signal readings that warn or fail point at the layer :func:`check_norm_groups` found."""
    if found is None:
        return verdicts
    return [type(v)(v.check, v.status, v.value, v.expected, f"fix '{NAME}' first: a normalization layer erases "
                    "what its input carries") if v.check in BOUND and v.status in ("warn", "fail") else v
            for v in verdicts]


def norm_groups_verdict(found: dict[str, tuple[str, int]], name: str = NAME) -> Verdict | None:
    """A fail naming the layers :func:`few_value_groups` found (None when it found none)."""
    if not found:
        return None
    layer, (kind, m) = min(found.items(), key=lambda item: item[1][1])
    shown = ", ".join(f"'{n}' ({k})" for n, (k, _) in list(found.items())[:3]) + \
        (f" (+{len(found) - 3} more)" if len(found) > 3 else "")
    what = ("its normalized value is 0, so it outputs its bias whatever its input: the layers below it neither "
            "reach the output nor learn" if m == 1 else
            "they come out exactly -1 and +1 whatever the input: only which of the two is larger passes on")
    return Verdict(name, "fail", f"{shown} normalize{'s' * (len(found) == 1)} {m} value{'s' * (m != 1)} per group "
                   f"(each example on its own): {what}", "more than 2 values per group",
                   "normalize more values per group: GroupNorm(G, C) with G well below C on (N, C) features (or "
                   "LayerNorm(C) over the features), LayerNorm over the feature axis rather than a single output, "
                   "and no InstanceNorm on a 1 x 1 map")
