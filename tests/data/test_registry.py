import numpy as np
import pytest
import torch

from trainwell.data import available, load
from trainwell.data.corrupt import label_noise, random_labels, random_pixels
from trainwell.data.embedded import cache_dir, mnist1d_arrays
from trainwell.errors import DataError


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


def test_validation_split_is_disjoint_deterministic_and_seeded():
    a, b, c = load("digits", seed=0), load("digits", seed=0), load("digits", seed=1)
    assert torch.equal(a.val[0], b.val[0])
    assert not torch.equal(a.val[0], c.val[0])
    train_rows = {tuple(r.tolist()) for r in a.train[0].reshape(len(a.train[0]), -1)}
    val_rows = [tuple(r.tolist()) for r in a.val[0].reshape(len(a.val[0]), -1)]
    # digits has a few exact duplicate images; nearly all validation rows must be unseen
    assert sum(r in train_rows for r in val_rows) < 0.05 * len(val_rows)
    assert a.meta.input_shape == (1, 8, 8) and float(a.train[0].max()) <= 1.0


@pytest.mark.parametrize(
    "name, options, shape, classes",
    [
        ("spirals", {"arms": 5, "n_per_class": 40}, (2,), 5),
        ("xor", {}, (2,), 2),
        ("parity", {"bits": 5}, (5,), 2),
        ("encoder8", {}, (8,), 8),
        ("modular", {"p": 7}, (14,), 7),
        ("tc", {"n": 50, "grid": 6}, (1, 6, 6), 2),
    ],
)
def test_synthetic_datasets_have_declared_shapes_and_classes(name, options, shape, classes):
    s = load(name, **options)
    assert s.meta.input_shape == shape and s.meta.num_classes == classes
    labels = torch.cat([s.train[1], s.test[1]])
    assert int(labels.min()) >= 0 and int(labels.max()) < classes


def test_synthetic_labels_follow_their_definitions():
    x, y = load("xor").train
    assert torch.equal(y, (x[:, 0] != x[:, 1]).long())
    x, y = load("parity", bits=6).train
    assert len(x) == 64 and torch.equal(y, x.sum(1).long() % 2)
    x, y = load("encoder8").train
    assert torch.equal(x.argmax(1), y)
    s = load("modular", p=11, train_fraction=0.5, encoding="tokens", val_fraction=0.0)
    x, y = s.train
    assert torch.equal(y, (x[:, 0] + x[:, 1]) % 11)
    assert len(s.train[0]) + len(s.test[0]) == 121
    x, y = load("tc", n=200).train
    assert torch.all(x.sum(dim=(1, 2, 3)) == 5)  # both shapes have five pixels, whatever the rotation


def test_enumerative_datasets_validate_on_the_full_pattern_set():
    s = load("parity", bits=3)
    assert torch.equal(s.val[0], s.train[0]) and torch.equal(s.test[0], s.train[0])


def test_label_noise_resamples_the_requested_fraction():
    y = torch.zeros(10000, dtype=torch.int64)
    noisy = label_noise(y, 0.3, num_classes=10, seed=3)
    changed = float((noisy != y).float().mean())
    assert changed == pytest.approx(0.3 * 0.9, abs=0.015)
    assert torch.equal(noisy, label_noise(y, 0.3, 10, seed=3))


def test_random_labels_touch_train_only_and_are_fixed():
    clean = load("digits")
    s = load("digits", random_labels=True, corrupt_seed=5)
    assert torch.equal(s.test[1], clean.test[1]) and torch.equal(s.val[1], clean.val[1])
    agree = float((s.train[1] == clean.train[1]).float().mean())
    assert agree < 0.2  # chance is 10%
    assert torch.equal(s.train[1], random_labels(clean.train[1], 10, 5))


def test_random_pixels_permute_each_example_independently():
    x = torch.arange(24.0).reshape(2, 1, 3, 4).repeat(3, 1, 1, 1)
    out = random_pixels(x, seed=0)
    assert out.shape == x.shape
    for a, b in zip(x, out, strict=True):
        assert torch.equal(a.flatten().sort().values, b.flatten().sort().values)
    assert not torch.equal(out[0], out[2])


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"name": "imagenet"}, "unknown dataset 'imagenet'"),
        ({"name": "spirals", "armz": 3}, "unknown option 'armz' for dataset 'spirals'"),
        ({"name": "spirals", "arms": 1}, "spirals arms = 1"),
        ({"name": "modular", "train_fraction": 1.5}, "train_fraction"),
        ({"name": "mnist"}, "data.root is empty"),
        ({"name": "cifar10", "root": "/nonexistent/folder"}, "not a folder"),
        ({"name": "digits", "val_fraction": 1.0}, "val_fraction"),
    ],
)
def test_bad_dataset_requests_are_clear_errors(kwargs, fragment):
    kwargs = dict(kwargs)
    name = kwargs.pop("name")
    with pytest.raises(DataError, match=fragment.replace("(", r"\(")):
        load(name, **kwargs)


def test_available_lists_every_dataset():
    names = available()
    for name in ("mnist1d", "digits", "spirals", "xor", "parity", "encoder8", "modular", "tc", "mnist",
                 "fashion-mnist", "cifar10"):
        assert name in names


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
