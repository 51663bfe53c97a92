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
