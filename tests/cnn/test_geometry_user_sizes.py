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


def test_dilated_filters_match_torchs_output_sizes_and_same_padding():
    import itertools

    from torch import nn

    from trainwell.cnn import GeometryError, conv_output_size, same_padding

    for W, F, S, P, D in itertools.product((9, 16), (1, 2, 3, 5), (1, 2), (0, 2), (1, 2, 3)):
        if D * (F - 1) + 1 > W + 2 * P:
            with pytest.raises(GeometryError, match="larger than the padded input"):
                conv_output_size(W, F, S, P, D=D, strict=False)
            continue
        layer = nn.Conv1d(1, 1, F, stride=S, padding=P, dilation=D)  # the oracle: torch's own layer
        assert conv_output_size(W, F, S, P, D=D, strict=False) == layer(torch.zeros(1, 1, W)).shape[-1]
    for F, D in itertools.product((1, 2, 3, 4, 5), (1, 2, 3)):
        if D * (F - 1) % 2:
            with pytest.raises(GeometryError, match="odd"):
                same_padding(F, D=D)
            continue
        same = nn.Conv2d(1, 1, F, padding="same", dilation=D)
        assert same_padding(F, D=D) == same._reversed_padding_repeated_twice[0]
        assert nn.Conv2d(1, 1, F, padding=same_padding(F, D=D), dilation=D)(torch.zeros(1, 1, 11, 11)).shape[-1] == 11
    with pytest.raises(GeometryError, match=r"D=0 is not allowed"):
        conv_output_size(9, 3, D=0)
