"""The labels a torch loss saved in its graph: what ``trainwell watch`` hands the watch as ``y=`` (read before
``backward()`` frees them)."""

from __future__ import annotations

import torch

#: nodes of a loss's graph searched for a saved target (a loss is the last few operations of the graph)
TARGET_NODES = 32


class _Freed(Exception):
    """The graph was backed through before (``retain_graph=False``): its saved tensors are gone."""


def _node_target(node) -> torch.Tensor | None:
    """The target a loss node saved (``NllLossBackward0._saved_target`` and the like), else None. A loss given its
    arguments the wrong way round, ``criterion(targets, outputs)`` (``BCEWithLogitsLoss`` takes a target with a
    gradient), saved the outputs as its target: the labels are then its input, the argument without a gradient."""
    try:
        target = getattr(node, "_saved_target", None)
        given = getattr(node, "_saved_self", None) if isinstance(target, torch.Tensor) and \
            target.requires_grad else None
    except RuntimeError:
        raise _Freed from None
    if isinstance(given, torch.Tensor) and not given.requires_grad:
        return given  # (targets, outputs): the targets are the input
    return target if isinstance(target, torch.Tensor) else None


def saved_targets(loss: torch.Tensor, most: int = 8) -> list[tuple]:
    """Every (node, target) of a torch loss call in ``loss``'s graph (up to ``most``), breadth-first among the
    graph's last :data:`TARGET_NODES` nodes, a loss node's own inputs not searched further (a multi-task loss's sum
    of calls: one per head); empty when the graph was freed already."""
    queue, seen, found = [loss.grad_fn], 0, []
    while queue and seen < TARGET_NODES and len(found) < most:
        node = queue.pop(0)
        if node is None:
            continue
        seen += 1
        try:
            target = _node_target(node)
        except _Freed:
            return []
        if target is not None:
            found.append((node, target))
            continue
        queue.extend(f for f, _ in node.next_functions)
    return found


def saved_target(loss: torch.Tensor) -> torch.Tensor | None:
    """The target a torch loss saved in ``loss``'s graph (``NllLossBackward0._saved_target`` and the like), found
    breadth-first among the graph's last :data:`TARGET_NODES` nodes; None for a loss without one (soft targets,
    a loss written out by hand). Read before ``backward()``: it frees the saved tensors. A loss given its arguments
    the wrong way round, ``criterion(targets, outputs)``, gives its input (the argument without a gradient)."""
    found = saved_targets(loss, most=1)
    return found[0][1] if found else None


__all__ = ["TARGET_NODES", "saved_target", "saved_targets"]
