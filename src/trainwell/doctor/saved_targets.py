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


def _one_value(t: torch.Tensor) -> float | None:
    """The value every element of ``t`` holds, else None."""
    if not t.numel():
        return None
    first = t.reshape(-1)[0]
    return float(first) if bool((t == first).all()) else None


def step_target(loss: torch.Tensor) -> torch.Tensor | None:
    """The labels of the step whose loss is ``loss``: :func:`saved_target`'s, except for a loss summing two or more
    calls whose targets each hold one value, values that differ (a discriminator's ``bce(D(real), ones) +
    bce(D(fake), zeros)``, a link predictor's positive and negative pairs): such targets say which side of the
    contrast each call's rows are on, not a label of the batch's rows, and the first call's alone (all ones) would
    read as targets missing their negatives; None then.

    Example:
        >>> import torch.nn.functional as F
        >>> a, b = torch.randn(4, 1, requires_grad=True), torch.randn(4, 1, requires_grad=True)
        >>> step_target(F.binary_cross_entropy_with_logits(a, torch.ones(4, 1)) +
        ...             F.binary_cross_entropy_with_logits(b, torch.zeros(4, 1))) is None
        True
        >>> step_target(F.binary_cross_entropy_with_logits(a, torch.ones(4, 1))).flatten().tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    found = saved_targets(loss)
    if not found:
        return None
    values = [_one_value(t) for _, t in found]
    if len(found) >= 2 and None not in values and len(set(values)) >= 2:
        return None
    return found[0][1]


__all__ = ["TARGET_NODES", "saved_target", "saved_targets", "step_target"]
