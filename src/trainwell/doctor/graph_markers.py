"""How long an autograd graph lives, seen from outside it: a small marker object put in the metadata of one of its
nodes (``Node.metadata``, a dict the node owns) lives exactly as long as the node, so a weak reference to the
marker tells whether anything (a tensor computed from the node's output) still holds the graph. It costs one
dict entry and changes nothing in the backward pass."""

from __future__ import annotations

import weakref


class _Marker:
    """Lives as long as the autograd node whose metadata holds it."""

    __slots__ = ("__weakref__",)


def mark(node, key: str) -> weakref.ref | None:
    """A weak reference to a marker held by ``node``'s metadata under ``key``; None when ``node`` is None, has no
    metadata dict, or holds a marker under ``key`` already (the same tensor given twice)."""
    metadata = getattr(node, "metadata", None)
    if not isinstance(metadata, dict) or key in metadata:
        return None
    marker = _Marker()
    metadata[key] = marker
    return weakref.ref(marker)
