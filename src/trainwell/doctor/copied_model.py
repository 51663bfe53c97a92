"""An optimizer built on a copy of the model the loop trains (``ema = copy.deepcopy(model)``, then
``SGD(ema.parameters())``, while the loss is computed by ``model``): the model the optimizer holds never gets a
gradient, and the model that does is never stepped. Read from the first loss's graph: none of the held parameters
is in it, and the trainable parameters it goes through, of another model that no optimizer holds, have the
held parameters' shapes one for one. A GAN's generator loss goes through its discriminator too, but also through
the generator's own (held) parameters, and the two models' shapes differ."""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

#: the optimizer-ownership verdict's value, the count of the copy's parameters filled in
HOLDS_COPY = ("the optimizer holds a copy's parameters (e.g. built on a deepcopy): the loss goes through {n} "
              "parameters of another model, with the same shapes as the {n} it holds, which never get a gradient")


def trained_copy(model: nn.Module, leaves: list[torch.Tensor], held: set[int]) -> int:
    """How many parameters the loss (its graph's ``leaves``) goes through that belong to a copy of ``model`` no
    optimizer holds (``held``: the ids the optimizers step), while the held parameters of ``model`` are not in the
    graph at all; 0 when it is not so."""
    own = [p for p in model.parameters() if p.requires_grad and id(p) in held]
    reached = {id(t) for t in leaves}
    if not own or any(id(p) in reached for p in own):
        return 0
    mine = {id(p) for p in model.parameters()}
    other = [t for t in leaves if isinstance(t, nn.Parameter) and t.requires_grad and id(t) not in held
             and id(t) not in mine]
    if Counter(tuple(t.shape) for t in other) != Counter(tuple(p.shape) for p in own):
        return 0
    return len(other)


__all__ = ["HOLDS_COPY", "trained_copy"]
