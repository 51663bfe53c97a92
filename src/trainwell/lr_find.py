"""``optim.lr = "find"`` and ``trainwell lr-find``: kept importable here; the code lives in
:mod:`trainwell.pipeline.lr_find`."""

from trainwell.pipeline.lr_find import CHECK_STEPS, LRFind, find_lr, plot, resolve, resolve_lr

__all__ = ["CHECK_STEPS", "LRFind", "find_lr", "plot", "resolve", "resolve_lr"]
