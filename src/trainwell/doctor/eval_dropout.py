"""A functional dropout left on in eval mode: ``F.dropout(x, p)`` in a forward, whose ``training`` defaults to True,
drops units at test time too (``nn.Dropout`` follows ``model.eval()``; the function does only when given
``training=self.training``). The model is run once in eval mode on a few examples, and a functional dropout called
there with ``training=True`` and ``p > 0`` is named: its predictions are random at test time, and its validation
loss is the loss of a thinned network. The pre-flight's gradient check reads it too, as two eval-mode forwards of
the same batch that differ."""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor.gradient_check import _TrainingDropout
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import module_modes, restore_modes

NAME = "eval-mode forwards"


def eval_dropout(model: nn.Module, x: torch.Tensor | Inputs) -> Verdict | None:
    """A warning when a forward of ``model`` in eval mode on ``x`` calls a functional dropout with ``training=True``
    (its default) and ``p > 0``; else None. The model's modes and the random state are put back."""
    modes = module_modes(model)
    try:
        model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]), _TrainingDropout() as dropout:
            call(model, x)
    finally:
        restore_modes(modes)
    if dropout.called is None:
        return None
    return Verdict(NAME, "warn", f"F.{dropout.called} runs with training=True in eval mode: eval-mode forwards of the "
                   "same batch differ, so validation and test-time predictions are random", "no dropout in eval mode",
                   f"pass training=self.training to F.{dropout.called} (or use the nn.Dropout module); only MC "
                   "dropout keeps it on by design")


__all__ = ["eval_dropout"]
