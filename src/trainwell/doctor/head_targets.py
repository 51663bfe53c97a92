"""For ``trainwell watch``: the labels of each head of a multi-task model, read from its loss's graph.

A model whose forward returns a dict of heads (``{'label': ..., 'rest': ...}``) is trained on a sum of loss calls, one
per head, each saving its own target in the graph (:func:`~trainwell.doctor.saved_targets.saved_targets`). Each
call's node is followed down the graph to the head output it reads: the targets are handed to the watch as the dict
``{head: its labels}`` a script would give ``w.step(loss, y=...)``, and each task's labels are read against its own
head's width (1-based labels of one task: its head's class 0 never trained), as the explicit watch reads them.
"""

from __future__ import annotations

import torch

from trainwell.doctor.saved_targets import saved_targets

#: nodes searched below a loss call's node for the head it reads (a loss reads its head a few operations down)
HEAD_NODES = 64


def output_heads(out) -> dict | None:
    """The heads of a forward's output: ``{key: its tensor's grad_fn}`` for a dict of two or more tensors with a
    gradient (a multi-task model's), else None. The nodes are held till the next forward replaces them."""
    if not isinstance(out, dict):
        return None
    heads = {k: v.grad_fn for k, v in out.items() if isinstance(v, torch.Tensor) and v.grad_fn is not None}
    return heads if len(heads) >= 2 else None


def _head(node, heads: dict[int, str]) -> str | None:
    """The one head (its key) the loss call at ``node`` reads, breadth-first among :data:`HEAD_NODES` nodes below
    it; None when it reads none, or several."""
    queue, seen, found = [node], 0, set()
    while queue and seen < HEAD_NODES:
        n = queue.pop(0)
        if n is None:
            continue
        seen += 1
        if id(n) in heads:
            found.add(heads[id(n)])
            continue
        queue.extend(f for f, _ in n.next_functions)
    return found.pop() if len(found) == 1 else None


def head_targets(loss: torch.Tensor, heads: dict | None) -> dict | None:
    """``{head: target}`` of a loss summing calls on two or more of ``heads`` (:func:`output_heads`), in the
    heads' order; None when the loss has fewer than two calls, a call reads no single head, or two read one.
    Read before ``backward()`` frees the saved targets.

    Example:
        >>> from torch import nn
        >>> import torch.nn.functional as F
        >>> x, a, b = torch.randn(4, 3), nn.Linear(3, 2), nn.Linear(3, 5)
        >>> out = {"kind": a(x), "size": b(x)}
        >>> loss = F.cross_entropy(out["kind"], torch.tensor([0, 1, 1, 0])) + \\
        ...     F.cross_entropy(out["size"], torch.tensor([4, 1, 2, 3]))
        >>> head_targets(loss, output_heads(out))["size"].tolist()
        [4, 1, 2, 3]
    """
    if not heads:
        return None
    found = saved_targets(loss)
    if len(found) < 2:
        return None
    ids = {id(fn): key for key, fn in heads.items()}
    read: dict = {}
    for node, target in found:
        key = _head(node, ids)
        if key is None or key in read:
            return None
        read[key] = target
    return {k: read[k] for k in heads if k in read}


__all__ = ["head_targets", "output_heads"]
