"""Embedding tables as a model's last learnable layers: a matrix-factorization recommender predicts a rating as
the dot product of a user's and an item's row (plus biases), with no Linear layer after them. torch draws
``nn.Embedding``'s weights from N(0, 1), so the dot product of two d-dim rows starts with std sqrt(d) (5.7 for
d = 32) and a regression loss far above the targets' variance; matrix factorization starts the factors small
(N(0, 0.1^2), or std 1/sqrt(d); Koren, Bell & Volinsky 2009). The advice names the tables and that init, where
"shrink the last Linear's init" would name a layer the model does not have."""

from __future__ import annotations

import math

import torch
from torch import nn

from trainwell.doctor.forward import _WEIGHTED, hooked_forward
from trainwell.doctor.inputs import Inputs

_TABLES = (nn.Embedding, nn.EmbeddingBag)

DEFAULT_STD = 0.5
"""Weight std at or above which a table reads as started from torch's default N(0, 1) (a small init gives 0.1 or
1/sqrt(d); a trained table rarely reaches 1 in every direction)."""


def last_tables(model: nn.Module, x: torch.Tensor | Inputs) -> list[tuple[str, nn.Module]]:
    """(name, module) of the trainable embedding tables looked up after the model's last Linear/Conv layer on one
    forward pass of ``x`` (every table when it has none), each once, in the order they ran."""
    seen: list[tuple[str, bool]] = []
    hooked_forward(model, x, _WEIGHTED + _TABLES, lambda name, inp, out: seen.append((name, False)))
    modules = dict(model.named_modules())
    tail: dict[str, nn.Module] = {}
    for name, _ in seen:
        if isinstance(modules[name], _TABLES):
            tail.setdefault(name, modules[name])
        else:
            tail.clear()
    return [(n, m) for n, m in tail.items() if m.weight.requires_grad]


def embedding_advice(model: nn.Module, x: torch.Tensor | Inputs, scores: torch.Tensor | None = None) -> str | None:
    """What to change when the outputs start too large and the model's last learnable layers are embedding tables
    of more than one column at torch's default N(0, 1) init: their names and a small init; None otherwise."""
    try:
        tables = last_tables(model, x)
    except Exception:  # noqa: BLE001 - a forward the hooks cannot follow: no reading
        return None
    wide = [(n, m) for n, m in tables if m.weight.shape[1] > 1
            and float(m.weight.detach().double().std()) >= DEFAULT_STD]
    if not wide:
        return None
    names = ", ".join(f"'{n}'" for n, _ in wide)
    dim = max(int(m.weight.shape[1]) for _, m in wide)
    stds = ", ".join(f"{float(m.weight.detach().double().std()):.2g}" for _, m in wide)
    spread = (f" (the outputs' std is {float(scores.detach().double().std()):.3g})"
              if scores is not None and scores.is_floating_point() and scores.numel() > 1 else "")
    product = (f"a dot product of two such {dim}-dim rows has std ~sqrt({dim}) = {math.sqrt(dim):.2g}{spread}"
               if len(wide) > 1 else f"their rows give outputs far from zero{spread}")
    return (f"the embeddings {names} are the last learnable layers and start from torch's default N(0, 1) init "
            f"(weight std {stds}): {product}; initialize them small, nn.init.normal_(emb.weight, std=0.1) "
            f"(or std=1/sqrt({dim})), as matrix factorization does (Koren et al. 2009)")
