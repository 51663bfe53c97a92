"""Monte Carlo dropout validation: the model left in train mode on purpose, each batch passed several times
without gradients and the dropout samples averaged (an uncertainty estimate), told from a validation that forgot
``model.eval()`` and passes each batch once."""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn


def fingerprint(x: torch.Tensor | None) -> tuple | None:
    """What tells one batch from another: its shape and the sum of its values (not where it lies, which the next
    batch may reuse)."""
    return None if x is None else (tuple(x.shape), float(x.detach().sum(dtype=torch.float64)))


def mc_dropout(sampled: list[tuple], norms: list[nn.Module]) -> bool:
    """Monte Carlo dropout: every train-mode forward without gradients repeats the inputs of another (several
    dropout samples of each batch, averaged). BatchNorm in train mode would still learn from them: not excused."""
    if len(sampled) < 2 or None in sampled or any(m.training for m in norms):
        return False
    return min(Counter(sampled).values()) >= 2
