"""A supervised contrastive loss's floor (SupCon, Khosla et al. 2020): each anchor's mean negative log-softmax,
over its row of a similarity matrix, of the entries that share its label (its positives, itself left out). The
mean of -log p over P positives is at least -log of their mean probability, and so at least ln P: the loss levels
off near the mean of ln P over the anchors however well the embeddings are learned (about 2.7 for 128 rows of 8
classes), and a curve flat there is at its floor, not held up by the learning rate.

The loss is recognized by its log-softmax (or logsumexp) over the rows of a square matrix that is a similarity
matrix of unit-norm embeddings times 1/T (:class:`~trainwell.doctor.contrastive_floor.ContrastiveReader`); the
positives are read from the labels given to ``w.step(loss, y=labels)``, one per row of that matrix."""

from __future__ import annotations

import torch

from trainwell.doctor.contrastive_floor import ContrastiveReader


def positives_floor(labels: torch.Tensor) -> float:
    """The mean over the anchors of ln(the count of other rows with the anchor's label); an anchor with none adds
    0 (the least any mean over its positives can be)."""
    same = labels[:, None] == labels[None, :]
    positives = (same.sum(1) - 1).clamp_min(1).double()
    return float(positives.log().mean())


def supcon_floors(reader: ContrastiveReader, ys: list[torch.Tensor], losses: list[float]) -> list[float] | None:
    """Each step's SupCon floor (:func:`positives_floor` of its labels) where the reader saw a log-softmax over a
    square similarity matrix, every step gave one integer label per row of it (the matrix's rows are the batch's
    views, their labels given to ``w.step``) and no loss fell below its floor. Else None."""
    if reader.square_scale is None or not ys or len(ys) != len(losses):
        return None
    floors = []
    for y, loss in zip(ys, losses, strict=True):
        if y.dim() != 1 or y.is_floating_point() or len(y) < 2:
            return None
        floor = positives_floor(y)
        if loss < floor - 1e-3 * max(1.0, floor):
            return None
        floors.append(floor)
    return floors
