"""Datasets (embedded, synthetic, files), corruptions and preprocessing."""

from trainwell.data.registry import DATASETS, available, load

_PREPROCESSORS = ("PCA", "ZCA", "MeanCenter", "Standardize")


def __getattr__(name: str):
    # the preprocessors are scikit-learn estimators: importing scikit-learn costs about a second, so they are
    # loaded on first use (``from trainwell.data import PCA`` works as before), not by every `trainwell fit`
    if name in _PREPROCESSORS:
        from trainwell.data import preprocess

        return getattr(preprocess, name)
    if name in ("Meta", "Splits"):  # torch-backed: loaded on first use, so that naming datasets needs no torch
        from trainwell.data import splits

        return getattr(splits, name)
    raise AttributeError(f"module 'trainwell.data' has no attribute {name!r}")

__all__ = ["DATASETS", "PCA", "ZCA", "MeanCenter", "Meta", "Splits", "Standardize", "available", "load"]
