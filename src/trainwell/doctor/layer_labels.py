"""How a report names a layer: by its name in the model, and, for the bare index a Sequential gives it ('2'), by
what it is too, so a reader finds it without counting modules: ``'2' (ReLU after Linear(64 -> 32))``.

Example:
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
    >>> layer_label("3", model[3], model[2])
    "'3' (ReLU after Linear(64 -> 32))"
    >>> layer_label("2", model[2])
    "'2' (Linear(64 -> 32))"
"""

from __future__ import annotations

from torch import nn


def shape_of(module: nn.Module) -> str:
    """A weighted layer by its type and its sizes in and out (``Linear(64 -> 32)``, ``Conv2d(3 -> 16)``,
    ``Embedding(1000 -> 64)``); any other module by its type alone."""
    kind = type(module).__name__
    for ins, outs in (("in_features", "out_features"), ("in_channels", "out_channels"),
                      ("num_embeddings", "embedding_dim")):
        if isinstance(getattr(module, ins, None), int) and isinstance(getattr(module, outs, None), int):
            return f"{kind}({getattr(module, ins)} -> {getattr(module, outs)})"
    return kind


def layer_label(name: str, module: nn.Module | None, feeder: nn.Module | None = None) -> str:
    """``name`` quoted, with what the module is (and the weighted layer ``feeder`` that ran before it, when given)
    in parentheses; the quoted name alone when ``module`` is None (a name that already says what it is:
    ``F.relu after conv``)."""
    if module is None:
        return f"'{name}'"
    what = shape_of(module) + (f" after {shape_of(feeder)}" if feeder is not None else "")
    return f"'{name}' ({what})"


def weighted_labels(model: nn.Module) -> dict[str, str]:
    """The label of each weighted layer of ``model`` (a module with sizes in and out, as :func:`shape_of` reads
    them) under its name, and of each of its parameter tensors under the tensor's name (``'net.4.weight'
    (Linear(128 -> 10))``): how a report names the layer a gradient or an update was read in."""
    labels: dict[str, str] = {}
    for name, module in model.named_modules():
        if shape_of(module) == type(module).__name__:
            continue  # no sizes: a container, an activation, a norm without a width to name
        labels[name] = layer_label(name, module)
        for tensor, _ in module.named_parameters(recurse=False):
            full = f"{name}.{tensor}" if name else tensor
            labels[full] = layer_label(full, module)
    return labels


__all__ = ["layer_label", "shape_of", "weighted_labels"]
