"""Datasets (embedded, synthetic, files), corruptions and preprocessing."""

from trainwell.data.preprocess import PCA, ZCA, MeanCenter, Standardize
from trainwell.data.registry import DATASETS, available, load
from trainwell.data.splits import Meta, Splits

__all__ = ["DATASETS", "PCA", "ZCA", "MeanCenter", "Meta", "Splits", "Standardize", "available", "load"]
