"""Optimizers that wrap another one and update through it. Sharpness-aware minimization as published (Foret et al.
2021; the reference implementation github.com/davda54/sam) holds a ``base_optimizer`` that shares its param groups:
a loop calls ``first_step()`` (the ascent to the worst nearby weights) and ``second_step()`` (the weights put back
and ``base_optimizer.step()``), never the wrapper's own ``step()``, and ``step(closure)`` calls both in turn. The
base optimizer's ``step()`` is the update in either form, so :func:`trainwell.doctor.watch` hooks that one.

Example:
    >>> import torch
    >>> class Wrapper(torch.optim.Optimizer):
    ...     def __init__(self, params, base, **kwargs):
    ...         super().__init__(params, kwargs)
    ...         self.base_optimizer = base(self.param_groups, **kwargs)
    ...         self.param_groups = self.base_optimizer.param_groups
    >>> w = Wrapper([torch.zeros(2, requires_grad=True)], torch.optim.SGD, lr=0.1)
    >>> stepping(w) is w.base_optimizer
    True
"""

from __future__ import annotations

import torch


def stepping(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer whose ``step()`` updates the weights: a wrapper's ``base_optimizer`` (followed down, in case
    it wraps another), else ``optimizer`` itself."""
    seen = {id(optimizer)}
    while isinstance(getattr(optimizer, "base_optimizer", None), torch.optim.Optimizer) and \
            id(optimizer.base_optimizer) not in seen:
        optimizer = optimizer.base_optimizer
        seen.add(id(optimizer))
    return optimizer
