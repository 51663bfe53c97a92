"""Concentric circles (data/circles.py)."""

import pytest
import torch

from trainwell.data import load
from trainwell.errors import DataError


def test_circles_lie_on_their_radii_and_no_linear_model_separates_them():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import PolynomialFeatures

    s = load("circles", n=400, noise=0.0, factor=0.4, val_fraction=0.0)
    x, y = s.train
    r = x.norm(dim=1)
    assert torch.allclose(r[y == 0], torch.ones(1), atol=1e-5) and torch.allclose(r[y == 1], torch.full((1,), 0.4),
                                                                                   atol=1e-5)
    assert int(y.sum()) == 200 and s.meta.num_classes == 2 and s.meta.input_shape == (2,)
    xt, yt = s.test
    linear = LogisticRegression().fit(x.numpy(), y.numpy()).score(xt.numpy(), yt.numpy())
    squares = PolynomialFeatures(2).fit_transform
    quadratic = LogisticRegression(C=100).fit(squares(x.numpy()), y.numpy()).score(squares(xt.numpy()), yt.numpy())
    assert linear < 0.7 and quadratic == 1.0
    with pytest.raises(DataError, match=r"circles factor = 1\.5 is not allowed: use a number in \(0, 1\)"):
        load("circles", factor=1.5)
