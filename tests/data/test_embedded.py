"""MNIST-1D as the package ships it (data/embedded.py): the standard split, bit for bit, and its cache."""

import numpy as np
import pytest
import torch

from trainwell.data import load
from trainwell.data.embedded import cache_dir, mnist1d_arrays


@pytest.mark.slow  # regenerates the whole dataset with the reference package (~7 s)
def test_mnist1d_is_the_standard_split_and_bit_identical_to_the_package():
    from mnist1d.data import get_dataset_args, make_dataset

    ref = make_dataset(get_dataset_args())
    ours = mnist1d_arrays()
    for key in ("x", "y", "x_test", "y_test"):
        np.testing.assert_array_equal(ours[key], ref[key])
    assert (cache_dir() / "mnist1d-v1.npz").exists()  # cached after the first generation
    s = load("mnist1d", val_fraction=0.1)
    assert s.sizes() == {"train": 3600, "val": 400, "test": 1000}
    assert s.meta.input_shape == (1, 40) and s.meta.num_classes == 10 and s.meta.human_error == pytest.approx(0.04)
    assert s.train[0].dtype == torch.float32 and s.train[1].dtype == torch.int64


def test_mnist1d_cache_is_used_and_a_corrupt_cache_is_regenerated(tmp_path, monkeypatch):
    from trainwell.data import embedded

    monkeypatch.setenv("TRAINWELL_CACHE", str(tmp_path / "cache"))  # an empty cache of this test's own
    calls = []
    rng = np.random.default_rng(0)

    def counting():  # stands in for the real generator (seconds): arrays of the cached shapes
        calls.append(1)
        return {"x": rng.normal(size=(4000, 40)), "y": rng.integers(0, 10, 4000),
                "x_test": rng.normal(size=(1000, 40)), "y_test": rng.integers(0, 10, 1000)}

    monkeypatch.setattr(embedded, "_generate_mnist1d", counting)
    first = mnist1d_arrays()
    assert len(calls) == 1 and (tmp_path / "cache" / "mnist1d-v1.npz").exists()
    second = mnist1d_arrays()
    assert len(calls) == 1  # served from the cache: the generator did not run again
    np.testing.assert_array_equal(first["x"], second["x"])
    (tmp_path / "cache" / "mnist1d-v1.npz").write_bytes(b"not an npz file")
    again = mnist1d_arrays()
    assert len(calls) == 2  # a corrupt cache is regenerated, once
    assert again["x"].shape == (4000, 40) and not np.array_equal(first["x"], again["x"])  # the fresh arrays
    mnist1d_arrays()
    assert len(calls) == 2  # and rewritten: the next load uses it
