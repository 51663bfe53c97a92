"""``loop: layers built once``: a layer constructed inside ``forward()``.

``return nn.Linear(64, classes)(h)`` (or ``self.fc = nn.Linear(...)`` written in ``forward``) builds the layer
anew at every call: new random weights each step, which no optimizer holds (the optimizer was built on
``model.parameters()`` before them), so that layer never learns and the layers before it chase a target that
moves every step. Read on the losses of the first two steps the watch reads: the trainable ``nn.Parameter`` leaves
of each loss's graph (:func:`~trainwell.doctor.registration.graph_leaves`) that are not the model's and that no
optimizer holds. Another model's parameters (a GAN's other player, a jointly trained encoder) are the same tensors
at every step; a layer built in ``forward`` gives tensors of the same shapes that are new at the second step.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

from trainwell.doctor.registration import graph_leaves
from trainwell.doctor.verdict import Verdict

NAME = "loop: layers built once"


def _outside(loss: torch.Tensor, own: set[int]) -> list[nn.Parameter]:
    return [t for t in graph_leaves(loss) if isinstance(t, nn.Parameter) and t.requires_grad and id(t) not in own]


class FreshLayers:
    """The parameters outside the model and its optimizers that the first two read losses depend on."""

    def __init__(self) -> None:
        self._first: list[weakref.ref] = []
        self._shapes: list[tuple] = []
        self.fresh: list[tuple] = []  # the shapes of the outside parameters new at the second read
        self._reads = 0

    def read(self, loss, model: nn.Module, optimizers: list[torch.optim.Optimizer]) -> None:
        """One step's loss (the first two that hold a graph are read)."""
        if self._reads >= 2 or not isinstance(loss, torch.Tensor) or loss.grad_fn is None:
            return
        self._reads += 1
        own = {id(p) for p in model.parameters()} | {id(p) for o in optimizers for g in o.param_groups
                                                     for p in g["params"]}
        outside = _outside(loss, own)
        if self._reads == 1:
            self._first = [weakref.ref(p) for p in outside]
            self._shapes = sorted(tuple(p.shape) for p in outside)
            return
        before = [r() for r in self._first]
        if outside and not any(p is b for p in outside for b in before) and \
                sorted(tuple(p.shape) for p in outside) == self._shapes:
            self.fresh = self._shapes
        self._first = []

    def verdict(self) -> Verdict | None:
        """A fail when the second read loss depends on parameters outside the model, of the same shapes as the
        first's, that are new tensors: a layer built at every forward."""
        if not self.fresh:
            return None
        shapes = ", ".join(str(s) for s in self.fresh[:4]) + (" ..." if len(self.fresh) > 4 else "")
        return Verdict(NAME, "fail", f"the loss depends on {len(self.fresh)} nn.Parameter tensors (shapes {shapes}) "
                       "that are not the model's and are new tensors at every step: a layer built inside forward() "
                       "starts from new random weights at each call and never learns",
                       "every layer built once, in __init__",
                       "construct the layer in __init__ (self.head = nn.Linear(...)) and call it in forward "
                       "(self.head(h)); build the optimizer after the model, on model.parameters()")


__all__ = ["NAME", "FreshLayers"]
