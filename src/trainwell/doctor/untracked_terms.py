"""Where a gradient check's disagreement comes from when no custom backward is in the loss's graph.

Autograd's own operations have correct derivatives; autograd and the centred differences can then disagree only
if the loss depends on the weights through a value the graph does not hold: a term taken with ``.item()``,
``.detach()``, ``.data``, NumPy or computed under ``torch.no_grad`` (an auxiliary loss of a mixture of experts
added as ``aux.item()``). The differences see that term move the loss; autograd sends the weights no gradient
from it. A straight-through estimator does this on purpose. Only a ``torch.autograd.Function`` written in Python
(a ``BackwardCFunction`` node in the graph) can make autograd itself wrong."""

from __future__ import annotations

import torch

from trainwell.doctor.registration import graph_nodes


def custom_backward_in(loss: torch.Tensor) -> bool:
    """Whether ``loss``'s autograd graph holds a node of a Python ``torch.autograd.Function`` (a hand-written
    backward); the graph's structure outlives ``backward()``."""
    fn = getattr(loss, "grad_fn", None)
    return fn is not None and any(isinstance(node, torch.autograd.function.BackwardCFunction)
                                  for node in graph_nodes([fn]))


def untracked_advice(where: str) -> str:
    """The advice for a disagreement at parameter ``where`` with no hand-written backward in the graph."""
    return (f"the loss depends on '{where}' through a value autograd does not follow: a term taken with .item(), "
            f".detach(), .data, NumPy or under torch.no_grad moves the loss but sends '{where}' no gradient; keep "
            f"that term a tensor in the graph (a straight-through estimator does this on purpose)")
