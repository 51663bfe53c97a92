"""Two concentric circles (scikit-learn's ``make_circles``): the classic 2-D problem no linear model solves.

Class 0 lies on the unit circle, class 1 on a circle of radius ``factor``, each point moved by Gaussian noise of
std ``noise``. A linear classifier is at chance (both classes share their mean, the origin); one hidden layer
solves it (the radius, x1^2 + x2^2, separates the classes), as with the lecture's XOR.

Example:
    >>> xtr, ytr, xte, yte = circles(n=100, noise=0.0)
    >>> tuple(xtr.shape), int(ytr.sum())
    ((100, 2), 50)
"""

from __future__ import annotations

import numpy as np
import torch

from trainwell.errors import DataError


def circles(n: int = 400, noise: float = 0.05, factor: float = 0.5, seed: int = 0):
    """``n`` training and ``n`` test points (half of each class), shuffled; returns
    ``(x_train, y_train, x_test, y_test)``."""
    from sklearn.datasets import make_circles

    if not isinstance(n, int) or isinstance(n, bool) or n < 4:
        raise DataError(f"circles n = {n!r} is not allowed: use an integer >= 4")
    if not 0 <= noise < float("inf"):
        raise DataError(f"circles noise = {noise!r} is not allowed: use a number >= 0")
    if not 0 < factor < 1:
        raise DataError(f"circles factor = {factor!r} is not allowed: use a number in (0, 1)")
    rng = np.random.RandomState(seed)
    parts = [make_circles(n_samples=n, noise=noise, factor=factor, random_state=rng) for _ in range(2)]
    (xtr, ytr), (xte, yte) = ((torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64))
                              for x, y in parts)
    return xtr, ytr, xte, yte
