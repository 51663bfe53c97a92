"""Layers and model builders."""

from trainwell.nn.models import build_model

__all__ = ["build_model"]
