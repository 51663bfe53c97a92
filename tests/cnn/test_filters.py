"""Classic image filters (cnn/filters.py): kernels, borders against scipy, the sample photo figure."""

import numpy as np
import pytest
import torch

from trainwell.cnn import filters


def test_classic_filters():
    assert torch.allclose(filters.box(3).sum(), torch.tensor(1.0))
    for sigma in (1, 2, 4):
        g = filters.gaussian(sigma)
        assert torch.allclose(g.sum(), torch.tensor(1.0)) and torch.equal(g, g.T)
        r = torch.arange(g.shape[0]) - g.shape[0] // 2
        var = float((g.sum(1) * r**2).sum())
        assert var == pytest.approx(sigma**2, rel=0.02)
    const = torch.full((10, 10), 3.0)
    assert torch.allclose(filters.apply(const, filters.sharpen()), const, atol=1e-5)  # 2I - box keeps flat areas
    assert torch.allclose(filters.apply(const, filters.box(5)), const, atol=1e-5)
    ramp = torch.arange(8.0).repeat(6, 1)  # increases by 1 along x
    dx, dy = filters.apply(ramp, filters.derivative_x()), filters.apply(ramp, filters.derivative_y())
    assert torch.allclose(dx[:, :-1].abs(), torch.ones(6, 7)) and torch.allclose(dy, torch.zeros(6, 8))


@pytest.mark.slow  # 0.3-1.2 s each
def test_sample_photo_and_filter_figure(tmp_path):
    photo = filters.sample_photo(64)
    assert photo.shape == (64, 64) and 0 <= float(photo.min()) < float(photo.max()) <= 1
    blurred = filters.apply(photo, filters.gaussian(2))
    assert float(blurred.var()) < float(photo.var())  # smoothing removes variance
    from sklearn.datasets import load_digits

    digit = torch.tensor(load_digits().images[0], dtype=torch.float32)
    filters.figure({"photo": photo, "digit": digit}, tmp_path / "filters.png")
    assert (tmp_path / "filters.png").stat().st_size > 1000


@pytest.mark.parametrize(("border", "scipy_mode"), [("replicate", "nearest"), ("reflect", "mirror"),
                                                    ("zeros", "constant")])
def test_filter_borders_match_scipy(border, scipy_mode):
    from scipy import ndimage

    g = torch.Generator().manual_seed(0)
    image, kernel = torch.rand(9, 11, generator=g), torch.rand(3, 5, generator=g)  # asymmetric: flipping shows
    ours = filters.apply(image, kernel, border=border)
    oracle = ndimage.convolve(image.double().numpy(), kernel.double().numpy(), mode=scipy_mode, cval=0.0)
    np.testing.assert_allclose(ours.numpy(), oracle, atol=1e-5)


def test_filter_border_errors():
    with pytest.raises(ValueError, match="border='wrap' is not allowed"):
        filters.apply(torch.rand(8, 8), filters.box(3), border="wrap")
    with pytest.raises(ValueError, match="border='reflect' cannot pad"):
        filters.apply(torch.rand(8, 8), filters.gaussian(4), border="reflect")
    assert filters.apply(torch.rand(8, 8), filters.gaussian(4)).shape == (8, 8)  # replicate pads any size


@pytest.mark.parametrize("border", ["replicate", "reflect", "zeros"])
def test_a_batch_of_images_is_filtered_image_by_image_in_its_own_dtype(border):
    from scipy import ndimage

    g = torch.Generator().manual_seed(1)
    batch, kernel = torch.rand(2, 3, 9, 11, generator=g, dtype=torch.float64), torch.rand(3, 5, generator=g)
    ours = filters.apply(batch, kernel, border=border)
    assert ours.shape == batch.shape and ours.dtype == torch.float64
    mode = {"replicate": "nearest", "reflect": "mirror", "zeros": "constant"}[border]
    for n in range(2):
        for c in range(3):
            oracle = ndimage.convolve(batch[n, c].numpy(), kernel.double().numpy(), mode=mode, cval=0.0)
            np.testing.assert_allclose(ours[n, c].numpy(), oracle, atol=1e-6)
    pixels = (batch[0, 0] * 255).to(torch.uint8)
    assert filters.apply(pixels, kernel, border=border).dtype == torch.float32
    with pytest.raises(ValueError, match=r"got shape \(11,\)"):
        filters.apply(batch[0, 0, 0], kernel)
