"""CNN toolkit: geometry of convolution and pooling layers."""

from trainwell.nn.geometry import GeometryError, conv_output_size, same_padding

__all__ = ["GeometryError", "conv_output_size", "same_padding"]
