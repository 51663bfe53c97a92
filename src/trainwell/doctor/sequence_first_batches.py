"""A watched loop that feeds batch-first (B, T, ...) batches to a recurrent or attention module built without
``batch_first=True``, which reads them as (T, B, ...).

``nn.TransformerEncoderLayer``, ``nn.MultiheadAttention`` and ``nn.RNN``/``nn.LSTM``/``nn.GRU`` take their inputs
sequence-first by default. Given a DataLoader's (B, T, F) batch, such a module attends (or recurs) across the
examples of the batch at each position, and never across an example's own positions: every example's output then
depends on the rest of its batch, and a classifier still trains, on the wrong relations. ``doctor.check`` reads it
as batch independence (:mod:`~trainwell.doctor.batch_independence`: in eval mode, d out_i / d x_j = 0 for
j != i); at a watched loop's report the same reading runs on the first observed training forward, its examples
located as ``doctor.check`` locates them (:func:`~trainwell.doctor.batch_layout.fitting_views`: from the targets
given to ``w.step(loss, y=...)``). A model that transposes its input to (T, B, ...) itself, or one built
``batch_first=True``, keeps each example's output its own and passes. Where (B, T, ...) and (T, B, ...) fit the
targets alike (as many examples as positions, or targets per position laid out like the input) the loop is named
only when the examples mix along both readings: a tagger fed (B, T, F) with (B, T) targets reads as a correct
sequence-first tagger fed (T, B, F) with (T, B) targets, and is not named (``doctor.check`` reads the first
dimension as the examples there).
"""

from __future__ import annotations

import torch

from trainwell.doctor.batch_independence import batch_independence
from trainwell.doctor.batch_layout import fitting_views, installed, sequence_first_layers
from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import kept_modes

NAME = "loop: batch independence"


def loop_sequence_first(probe, forward: tuple | None, y) -> Verdict | None:
    """A fail when the model has a sequence-first layer and, on the first observed training forward (``forward``:
    its (args, kwargs), the model called on one tensor) with its targets ``y``, every reading of where its examples
    lie shows one example's output depending on the others; None otherwise (also without ``y=``, or for a model
    called on several tensors: where the examples lie is not known)."""
    layers = sequence_first_layers(probe.model)
    if not layers or forward is None:
        return None
    args, kwargs = forward
    if len(args) != 1 or kwargs or not isinstance(args[0], torch.Tensor) or not isinstance(y, torch.Tensor):
        return None
    views = fitting_views(probe.model, args[0].detach(), y.detach())
    if not views:
        return None
    mixed = []
    probe.reading = True  # the probe's hooks record nothing of these forwards
    try:
        with kept_modes(probe.model):
            for view in views:
                with installed(probe.model, view):
                    verdict = batch_independence(probe.model, view.x)
                if verdict.status != "fail":
                    return None
                mixed.append(verdict)
    except Exception:  # noqa: BLE001 - a model this reading cannot run gets no verdict from it
        return None
    finally:
        probe.reading = False
    name, kind = layers[0]
    more = f" (+{len(layers) - 1} more)" if len(layers) > 1 else ""
    return Verdict(NAME, "fail", f"{kind} '{name}'{more} is built with batch_first=False and each example's output "
                   f"depends on the other examples of its batch ({mixed[0].value}): it reads the (B, T, ...) batch "
                   "as (T, B, ...), mixing the examples at each position", "each example's output from its own input",
                   "build it with batch_first=True (nn.TransformerEncoderLayer(..., batch_first=True), "
                   "nn.LSTM(..., batch_first=True)), or give it x.transpose(0, 1) and transpose its output back")
