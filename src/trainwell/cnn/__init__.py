"""CNN toolkit: geometry of convolution and pooling layers."""

from trainwell.cnn.geometry import GeometryError, conv_output_size

__all__ = ["GeometryError", "conv_output_size"]
