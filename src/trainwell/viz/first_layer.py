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


def first_weighted_layer(model, input_shape: tuple[int, ...] | None):
    """The first Linear/Conv layer to run on an input of ``input_shape`` (a model may register its head before its
    body); the first one registered without a shape, or when the model cannot be run on it."""
    import torch
    from torch import nn

    from trainwell.cnn.summary import summarize

    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d)
    modules = dict(model.named_modules())
    ran = []
    if input_shape is not None:
        try:
            with torch.random.fork_rng(devices=[]):  # a forward that draws (a gate, a noise layer) leaves no trace
                ran = [modules.get(row.name) for row in summarize(model, input_shape)]
        except ValueError:  # the model does not run on input_shape: the registration order
            ran = []
    return next((m for m in [*ran, *model.modules()] if isinstance(m, kinds)), None)


def first_layer_units(model, input_shape: tuple[int, ...], max_units: int = 32) -> dict | None:
    """What :func:`trainwell.viz.plots.draw_first_layer` draws of ``model``'s first Linear/Conv layer (the first to
    run on an input of ``input_shape``), as plain
    data (a float32 NumPy array of at most ``max_units`` units, their common scale, the title and the x label of
    1-D units); None if the model has none."""
    from torch import nn

    layer = first_weighted_layer(model, input_shape)
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
