"""Geometry of convolution and pooling layers: kept importable here; the code lives in :mod:`trainwell.nn.geometry`
(the models use it, and ``nn`` is below ``cnn``)."""

from trainwell.nn.geometry import GeometryError, conv_output_size, same_padding

__all__ = ["GeometryError", "conv_output_size", "same_padding"]
