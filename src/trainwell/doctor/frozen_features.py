"""Features that a frozen backbone hands the first layer that trains, varying too little across examples.

Under frozen layers (a pretrained-style backbone, ``requires_grad=False``) the first layer that trains sees fixed
features. When they differ between examples by a small fraction of unit scale (pooled activations of a backbone
whose BatchNorm keeps running statistics that do not match the data: a per-feature std of 0.014 across the
examples), the layer's weights must grow as many times before its outputs separate the examples, and a short fit
stalls: a head on such features reached loss 1.3 in 300 Adam steps, 0.24 in 1500, and 0.01 in 300 with an
``nn.BatchNorm1d`` before it (10 classes, 20 examples).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from trainwell.doctor.forward import _WEIGHTED, hooked_forward, trainable_layer
from trainwell.doctor.inputs import Inputs

#: the mean per-feature std across examples below which the frozen features are far too narrow (1 when standardized)
NARROW = 0.05


def frozen_features_spread(model: nn.Module, x: torch.Tensor | Inputs) -> tuple[str, float] | None:
    """(name, spread) of the first weighted layer that trains and the mean per-feature std across the examples of
    ``x`` of the features it receives, when frozen weighted layers come before it (a pretrained-style backbone,
    ``requires_grad=False``); None otherwise (nothing frozen feeds it, or no layer trains)."""
    seen: list[tuple[str, torch.Tensor]] = []
    hooked_forward(model, x, _WEIGHTED, lambda name, inp, out: seen.append((name, inp)))
    first = next((k for k, (name, _) in enumerate(seen) if trainable_layer(model, name)), None)
    if not first:  # no layer trains, or the first one reached trains: nothing frozen feeds it
        return None
    name, features = seen[first]
    if not isinstance(features, torch.Tensor) or not features.is_floating_point() or len(features) < 2:
        return None
    return name, float(features.detach().float().reshape(len(features), -1).std(0).mean())


def fitting_head(model: nn.Module, x: torch.Tensor | Inputs) -> bool:
    """Whether the layers that train begin after frozen ones that hand them features of a healthy spread (at least
    :data:`NARROW`): a head on a frozen backbone (fine-tuning that starts with the backbone frozen), whose
    weights grow to separate fixed features at the pace of their scale, so a fit of a few examples takes more
    steps than the whole model's would; False for anything else, or for a forward this reading cannot follow. Read
    on a copy (the model's BatchNorm statistics and the random generators are left as they are)."""
    try:
        with torch.random.fork_rng(devices=[]):
            read = frozen_features_spread(copy.deepcopy(model), x)
    except Exception:  # noqa: BLE001 - a forward this reading cannot follow: no claim
        return False
    return read is not None and read[1] >= NARROW


def narrow_frozen_features(model: nn.Module, x: torch.Tensor | Inputs) -> str | None:
    """Advice when the first weighted layer that trains comes after frozen weighted layers and receives features
    whose per-feature std across the examples of ``x`` averages below :data:`NARROW`; None otherwise."""
    read = frozen_features_spread(model, x)
    if read is None:
        return None
    name, spread = read
    if spread >= NARROW:
        return None
    return (f"the first layer that trains ('{name}') receives the frozen layers' features varying by a std of "
            f"{spread:.2g} across these examples (per feature; 1 when standardized): its weights must grow "
            f"~{1 / max(spread, 1e-12):.0f}x before they tell the examples apart; standardize the features before it "
            "(an nn.BatchNorm1d that trains), or check the backbone's preprocessing")
