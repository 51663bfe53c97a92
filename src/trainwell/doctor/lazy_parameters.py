"""Lazy modules (``nn.LazyLinear``, ``nn.LazyConv2d``, ...) given to the pre-flight before their first forward.

Their parameters have no shape until a forward sees an input, so nothing can be read, copied or restored. The
pre-flight gives them theirs as the user's loop would, with one forward of the batch's first examples: in eval mode
(no running statistics move, no dropout draws), without gradients, and with the random state put back afterwards, so
that the values drawn are the ones the loop's own first forward would have drawn from the same state.
"""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor.inputs import Inputs, call


def has_lazy_parameters(model: nn.Module) -> bool:
    return any(nn.parameter.is_lazy(t) for t in [*model.parameters(), *model.buffers()])


def materialize(model: nn.Module, x: torch.Tensor | Inputs) -> None:
    """Give a lazy model's parameters their shapes and initial values with one forward of ``x[:2]`` (see the module
    docstring); nothing happens to a model without lazy parameters.

    Raises:
        ValueError: the forward raised, so the lazy parameters stay without a shape.
    """
    if not has_lazy_parameters(model):
        return
    modes = [(m, m.training) for m in model.modules()]
    devices = [x.device.index or 0] if isinstance(x, torch.Tensor) and x.is_cuda else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            model.eval()
            call(model, x[:2])
    except Exception as e:  # noqa: BLE001 - any error of the user's forward is reported the same way
        raise ValueError(f"doctor.check: the model has lazy parameters and its forward on x raised "
                         f"{type(e).__name__}: {str(e).strip()[:200]}: run one forward of your data first") from None
    finally:
        for m, mode in modes:
            m.training = mode
