"""Each module's own train/eval flag, kept across work that switches modes. ``model.train(was)`` recurses into
every child, so it would put a BatchNorm the user froze with ``eval()`` back into train mode (its running
statistics then move); saving and restoring every module's flag leaves the user's choice as it was."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


def module_modes(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    """Each module's ``training`` flag, to put back with :func:`restore_modes`."""
    return [(m, m.training) for m in model.modules()]


def restore_modes(modes: list[tuple[nn.Module, bool]]) -> None:
    for m, training in modes:
        m.training = training


@contextmanager
def kept_modes(model: nn.Module) -> Iterator[nn.Module]:
    """``with kept_modes(model):`` switch modes freely inside; every module's flag is restored on exit, also on an
    exception."""
    modes = module_modes(model)
    try:
        yield model
    finally:
        restore_modes(modes)
