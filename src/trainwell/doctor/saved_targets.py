"""The labels a torch loss saved in its graph: what ``trainwell watch`` hands the watch as ``y=`` (read before
``backward()`` frees them)."""

from __future__ import annotations

import torch

#: nodes of a loss's graph searched for a saved target (a loss is the last few operations of the graph)
TARGET_NODES = 32


def saved_target(loss: torch.Tensor) -> torch.Tensor | None:
    """The target a torch loss saved in ``loss``'s graph (``NllLossBackward0._saved_target`` and the like), found
    breadth-first among the graph's last :data:`TARGET_NODES` nodes; None for a loss without one (soft targets,
    a loss written out by hand). Read before ``backward()``: it frees the saved tensors. A loss given its arguments
    the wrong way round, ``criterion(targets, outputs)`` (``BCEWithLogitsLoss`` takes a target with a gradient),
    saved the outputs as its target: the labels are then its input, the argument without a gradient."""
    queue, seen = [loss.grad_fn], 0
    while queue and seen < TARGET_NODES:
        node = queue.pop(0)
        if node is None:
            continue
        seen += 1
        try:
            target = getattr(node, "_saved_target", None)
            given = getattr(node, "_saved_self", None) if isinstance(target, torch.Tensor) and \
                target.requires_grad else None
        except RuntimeError:  # freed already (a graph backed through before, retain_graph=False)
            return None
        if isinstance(given, torch.Tensor) and not given.requires_grad:
            return given  # (targets, outputs): the targets are the input
        if isinstance(target, torch.Tensor):
            return target
        queue.extend(f for f, _ in node.next_functions)
    return None


__all__ = ["TARGET_NODES", "saved_target"]
