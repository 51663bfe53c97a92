"""Class labels as the losses want them: int64 class indices.

torch's ``cross_entropy`` wants int64 (``long``) class indices; labels read from files or built by users are often
int32 or uint8 (or bool). Those are cast. Float labels are refused with a message saying what to do, since a
float vector is ambiguous (rounded class ids? regression targets?) and torch's own error does not say.

Example:
    >>> import torch
    >>> as_class_labels(torch.tensor([0, 2, 1], dtype=torch.uint8)).dtype
    torch.int64
"""

from __future__ import annotations

import numpy as np
import torch


def as_class_labels(y, name: str = "y") -> torch.Tensor:
    """Return ``y`` as an int64 tensor of class indices (a no-op for int64 tensors).

    Accepts tensors or numpy arrays of any integer dtype (and bool). Targets with 2+ dims of a floating dtype
    (class probabilities, which ``cross_entropy`` also takes) are returned unchanged.

    Raises:
        TypeError: 1-D floating or complex labels; the message says to cast whole-number labels with ``.long()``.
    """
    if isinstance(y, np.ndarray):
        y = torch.from_numpy(np.ascontiguousarray(y))
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of class indices, got {type(y).__name__}: use torch.as_tensor")
    if y.dtype == torch.int64:
        return y
    if y.is_floating_point() or y.is_complex():
        if y.ndim >= 2 and y.is_floating_point():
            return y  # class probabilities (soft labels)
        whole = bool(torch.all(y == torch.round(y.real))) if y.numel() and not y.is_complex() else False
        hint = "y.long()" if whole else "y.round().long() if they are class ids"  # code, whatever name says
        raise TypeError(f"{name} has dtype {y.dtype}: class labels must be integers 0..C-1: use {hint}")
    return y.long()  # int8/16/32, uint8, bool: torch's losses accept them after this cast
