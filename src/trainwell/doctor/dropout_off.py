"""A regression's copy fitted with its dropout off: the noise dropout adds to an output grows with the output, so
on targets far from zero (raw units around 10 or 1000, with a spread far smaller than their size) a copy trained
through it sees its fit buried in that noise, and fits in eval mode only as closely as those noisy gradients let
it. Karpathy's recipe overfits a tiny subset with regularization off: the overfit check retries such a copy with
every dropout module's rate set to 0 (:func:`dropout_off`); a model that cannot fit still misses."""

from __future__ import annotations

import copy

from torch import nn

from trainwell.doctor.dropout_rate import _DROPOUTS, HIGH


def dropout_off(model: nn.Module) -> tuple[nn.Module, float] | None:
    """A deep copy of ``model`` with every dropout module's rate set to 0, and the highest rate it had; None when
    it has no dropout module with a rate between 0 and :data:`~trainwell.doctor.dropout_rate.HIGH` (a rate that
    drops most units is a bug of its own, named by the dropout-rate verdict, and its failed fit stands)."""
    rates = [float(m.p) for m in model.modules() if isinstance(m, _DROPOUTS)]
    if not rates or max(rates) <= 0 or max(rates) >= HIGH:
        return None
    plain = copy.deepcopy(model)
    for m in plain.modules():
        if isinstance(m, _DROPOUTS):
            m.p = 0.0
    return plain, max(rates)
