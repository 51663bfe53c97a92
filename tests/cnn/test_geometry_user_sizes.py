"""conv_output_size with the sizes a user computes: integers from shapes and NumPy, and floats by mistake."""

import numpy as np
import pytest
import torch
from torch import nn

from trainwell.cnn.geometry import conv_output_size


def test_sizes_from_a_tensor_shape_and_numpy_integers_match_torch():
    x = torch.zeros(1, 3, 37, 37)
    for f, s, p in [(3, 2, 1), (5, 1, 2), (7, 3, 0)]:
        torch_size = nn.Conv2d(3, 1, f, s, p)(x).shape[-1]
        assert conv_output_size(x.shape[-1], np.int64(f), s, p, strict=False) == torch_size


@pytest.mark.parametrize("args, named", [((32.5, 3, 1, 0), "W=32.5"), ((32, 3.0, 1, 0), "F=3.0"),
                                         ((32, 3, True, 0), "S=True"), ((32, 3, 1, "same"), "P='same'")])
def test_a_size_that_is_not_an_integer_is_named(args, named):
    with pytest.raises(TypeError, match=f"conv: {named} is not allowed: W, F, S and P are whole numbers"):
        conv_output_size(*args)
