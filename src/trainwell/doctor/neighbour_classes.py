"""Held-out class predictions of an embedding trained with class labels: each held-out example's nearest training
example's label.

A metric-learning loss (a triplet loss, batch-hard or not, Hermans et al. 2017; a contrastive or supervised
contrastive loss) reads class labels but no class scores: its model outputs an embedding. Its held-out loss is a
poor measure of what the inputs tell: the batch-hard loss takes each anchor's farthest positive and nearest
negative over the whole set, so on held-out examples it stays near its margin (the value of one embedding for
every input) while the embedding already sorts them by class (the digits' 1-NN accuracy 97% at a held-out
batch-hard loss of 0.37 against a margin of 0.3). The classes the embedding gives held-out examples, by the label
of their nearest training example (the 1-NN rule, Cover & Hart 1967), are what the inputs tell; labels independent
of the inputs agree with them by chance only, which the input-independent baseline's permutation test of class
predictions reads (:func:`~trainwell.doctor.baseline._agreement`).
"""

from __future__ import annotations

import torch

from trainwell.doctor import outputs as O


def embedding(out) -> torch.Tensor | None:
    """The (N, D) floating-point embedding in a model's output (a tensor, or a container's first such field);
    None otherwise."""
    z = O.logits(out)
    if not isinstance(z, torch.Tensor) or not z.is_floating_point() or z.dim() != 2 or z.shape[1] < 1:
        return None
    return z


def nearest_classes(held_out, trained, y_trained) -> torch.Tensor | None:
    """The label of each held-out example's nearest training example (Euclidean, over the embeddings
    ``held_out`` and ``trained``), given the training examples' (N,) class labels ``y_trained``; None when the
    outputs are not (N, D) embeddings, the labels not one integer per training example, or the embeddings not
    finite."""
    a, b = embedding(held_out), embedding(trained)
    if a is None or b is None or a.shape[1] != b.shape[1] or not len(a) or not len(b):
        return None
    if not isinstance(y_trained, torch.Tensor) or y_trained.is_floating_point() or y_trained.dim() != 1 or \
            len(y_trained) != len(b):
        return None
    a, b = a.detach().double(), b.detach().double()
    if not bool(torch.isfinite(a).all()) or not bool(torch.isfinite(b).all()):
        return None
    return y_trained.to(b.device)[torch.cdist(a, b).argmin(1)].cpu()
