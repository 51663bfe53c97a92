"""The container every dataset loader returns: train/val/test tensors plus metadata."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from trainwell.errors import DataError


@dataclass
class Meta:
    """What a model and the doctor need to know about a dataset.

    ``human_error`` is the human-level error rate (fraction) where one is known; the bias/variance diagnosis
    uses it as the floor for avoidable bias.
    """

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    task: str = "classification"
    human_error: float | None = None
    notes: dict = field(default_factory=dict)


@dataclass
class Splits:
    """Train, validation and test ``(x, y)`` pairs of tensors, and :class:`Meta`."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    meta: Meta

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train[0]), "val": len(self.val[0]), "test": len(self.test[0])}

    def val_or_none(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The validation pair, or None where it holds no example (``data.val_fraction = 0``): what
        ``Trainer.fit`` takes for a run without validation (it refuses empty tensors)."""
        return self.val if len(self.val[0]) else None


def split_validation(x: torch.Tensor, y: torch.Tensor, val_fraction: float, seed: int):
    """Hold out a random ``val_fraction`` of ``(x, y)`` as validation; return ``(train, val)``.

    With ``val_fraction == 0`` the validation split is empty.
    """
    n = len(x)
    n_val = int(round(n * val_fraction))
    if n_val >= n:
        raise DataError(f"data.val_fraction = {val_fraction} leaves no training examples out of {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    return (x[train_idx], y[train_idx]), (x[val_idx], y[val_idx])
