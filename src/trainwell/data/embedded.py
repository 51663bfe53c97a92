"""Datasets that ship with trainwell's dependencies: MNIST-1D (generated offline) and sklearn's 8x8 digits.

MNIST-1D: Greydanus & Kobak, "Scaling down deep learning with MNIST-1D" (ICML 2024). The ``mnist1d`` package's
``make_dataset(get_dataset_args())`` regenerates the published 4000/1000 split bit for bit; the arrays are cached
under the user cache directory so that later loads take milliseconds.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from trainwell.errors import DataError


def cache_dir() -> Path:
    """Return trainwell's cache directory (``$TRAINWELL_CACHE``, else ``$XDG_CACHE_HOME/trainwell``)."""
    if os.environ.get("TRAINWELL_CACHE"):
        return Path(os.environ["TRAINWELL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "trainwell"


def _generate_mnist1d() -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    state = np.random.get_state()  # make_dataset reseeds NumPy's global RNG; leave the caller's untouched
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(state)
    return {"x": d["x"], "y": d["y"], "x_test": d["x_test"], "y_test": d["y_test"]}


def mnist1d_arrays() -> dict[str, np.ndarray]:
    """Return the standard MNIST-1D arrays (x 4000x40, x_test 1000x40), generating and caching them once."""
    path = cache_dir() / "mnist1d-v1.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in ("x", "y", "x_test", "y_test")}
            if arrays["x"].shape == (4000, 40) and arrays["x_test"].shape == (1000, 40):
                return arrays
        except (OSError, ValueError, KeyError):
            pass  # a corrupt cache is regenerated below
    arrays = _generate_mnist1d()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass  # caching is an optimisation; an unwritable cache only costs regeneration time
    return arrays


def load_mnist1d(permute_seed: int | None = None):
    """Return ``(x_train, y_train, x_test, y_test)`` as float32 ``(N, 1, 40)`` signals and int64 labels.

    With ``permute_seed``, one fixed random permutation of the 40 positions (drawn with that seed) is applied to
    every signal of every split (as in permuted MNIST): the same information for a fully connected net, but no
    spatial order for a convolution's locality prior.
    """
    a = mnist1d_arrays()
    order = None
    if permute_seed is not None:
        order = torch.randperm(a["x"].shape[1], generator=torch.Generator().manual_seed(int(permute_seed)))

    def signals(x):
        x = torch.tensor(x, dtype=torch.float32)
        return (x[:, order] if order is not None else x).unsqueeze(1)

    def labels(y):
        return torch.tensor(y, dtype=torch.int64)

    return signals(a["x"]), labels(a["y"]), signals(a["x_test"]), labels(a["y_test"])


@functools.cache
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as read from its compressed CSV (~15 ms a read): once per process, kept read-only."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    images, target = d.images.copy(), d.target.copy()
    images.flags.writeable = target.flags.writeable = False
    return images, target


def load_digits(test_fraction: float = 0.2, seed: int = 0):
    """Return scikit-learn's 8x8 digits as ``(N, 1, 8, 8)`` images scaled to [0, 1], split train/test."""
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"digits test_fraction = {test_fraction} is not allowed: use a number in (0, 1)")
    images, target = _digits_arrays()
    x = torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(target, dtype=torch.int64)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(len(x) * test_fraction))
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test]
