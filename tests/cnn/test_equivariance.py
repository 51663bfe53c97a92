"""The equivariance probe (cnn/equivariance.py)."""

from torch import nn

from trainwell.cnn import filters
from trainwell.cnn.equivariance import probe, rotation_equivariance, shift_equivariance


def test_equivariance_probe():
    photo = filters.sample_photo(64)[None, None]
    layer = nn.Conv2d(1, 4, 5, padding=2, bias=False)
    assert shift_equivariance(layer, photo) < 1e-5
    assert rotation_equivariance(layer, photo) > 0.1
    result = probe(photo)
    assert result["conv+pool change under a 1-pixel shift"] < result["conv change under a 1-pixel shift"]


def test_a_layer_that_changes_the_size_or_an_image_without_an_interior_is_refused_not_read_as_equivariant():
    import pytest
    import torch

    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    strided = nn.Conv2d(3, 4, 3, stride=2, padding=1)  # the oracle: a shift of 2 moves its output by 1, not 2
    assert not torch.allclose(strided(torch.roll(x, (2, 2), (-2, -1)))[..., 4:-4, 4:-4],
                              torch.roll(strided(x), (2, 2), (-2, -1))[..., 4:-4, 4:-4])
    with pytest.raises(ValueError, match=r"maps \(32, 32\) to \(16, 16\)"):
        shift_equivariance(strided, x)
    with pytest.raises(ValueError, match=r"margin=8 .* \(16, 16\) output has none"):
        shift_equivariance(nn.Conv2d(3, 4, 3, padding=1), x[..., :16, :16])
    assert shift_equivariance(nn.Conv2d(3, 4, 3, padding=1), x) < 1e-5


def test_the_probe_leaves_the_callers_random_stream_as_it_was():
    import torch

    photo = filters.sample_photo(32)[None, None]
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = probe(photo)
    assert torch.equal(torch.rand(3), expected)
    assert probe(photo) == first  # the probe's own layer is still drawn from its seed
