"""The first Linear/Conv layer's units of a model, as plain data for a figure (torch here, no matplotlib).

Kept apart from :mod:`trainwell.viz.plots` so that a run can take them from its model without importing matplotlib:
the figure itself may be drawn by another process (:mod:`trainwell.viz.figure_process`).
"""

from __future__ import annotations

import math


def finite_limit(t) -> float:
    """The largest finite |value| of a tensor (1.0 if none is finite or all are 0): a symmetric colour/axis scale
    that a diverged layer's NaN or inf weights cannot break."""
    import torch

    finite = t[torch.isfinite(t)]
    return (float(finite.abs().max()) if finite.numel() else 0.0) or 1.0


def _first_weighted(model):
    from torch import nn

    return next((m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))), None)


def first_layer_units(model, input_shape: tuple[int, ...], max_units: int = 32) -> dict | None:
    """What :func:`trainwell.viz.plots.draw_first_layer` draws of ``model``'s first Linear/Conv layer, as plain
    data (a float32 NumPy array of at most ``max_units`` units, their common scale, the title and the x label of
    1-D units); None if the model has none."""
    from torch import nn

    layer = _first_weighted(model)
    if layer is None:
        return None
    w = layer.weight.detach().cpu().float()
    if isinstance(layer, nn.Linear):
        spatial = tuple(input_shape[1:]) if len(input_shape) >= 2 else tuple(input_shape)
        if w.shape[1] == math.prod(input_shape):
            if len(input_shape) == 3:  # (C, H, W): the first input channel, as for conv filters below
                w = w.reshape(w.shape[0], *input_shape)[:, 0]
            else:
                w = w.reshape(w.shape[0], *(spatial if len(spatial) == 2 else (-1,)))
    else:
        w = w[:, 0]  # first input channel
    units = w[:max_units]
    title = (f"first layer ({type(layer).__name__}): {len(units)} of {layer.weight.shape[0]} units"
             f"{', input channel 0' if layer.weight.dim() > 2 else ''}")
    # one symmetric scale for every unit: they are drawn comparably
    return {"units": units.numpy().copy(), "limit": finite_limit(units), "title": title,
            "xlabel": "tap" if isinstance(layer, nn.Conv1d) else "input"}
