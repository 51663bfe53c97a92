"""A CSV whose rows are images' pixels (Kaggle's MNIST ``train.csv``: ``label, pixel0 .. pixel783``) trained by a
CNN: ``data.options.shape`` arranges each row's features, row-major, as the image the columns were written from."""

import numpy as np
import pytest

from tests.data.test_user_files import _fit, _numpy_forward, _trained_well, bar_images, write_rows
from trainwell.data import load
from trainwell.errors import ConfigError, DataError
from trainwell.nn.models import build_cnn


def write_pixels(path, x, y):
    """Kaggle's layout: the label first, then one column per pixel in row-major order."""
    flat = x.reshape(len(x), -1)
    header = ["label", *(f"pixel{i}" for i in range(flat.shape[1]))]
    return write_rows(path, header, [[str(int(k)), *(f"{v:.6f}" for v in row)] for k, row in zip(y, flat, strict=True)])


def test_shape_arranges_each_row_as_the_image_it_was_written_from(tmp_path):
    x, y = bar_images(30)
    path = write_pixels(tmp_path / "train.csv", x, y)
    s = load("csv", root=str(path), label="label", shape=[8, 8], val_fraction=0.0, test_fraction=0.2)
    assert s.meta.input_shape == (1, 8, 8)
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32)  # the file read by NumPy: the oracle
    images = np.concatenate([s.train[0].numpy(), s.test[0].numpy()])
    labels = np.concatenate([s.train[1].numpy(), s.test[1].numpy()])
    order = [next(i for i in range(len(table)) if np.array_equal(table[i, 1:], img.reshape(-1))) for img in images]
    assert sorted(order) == list(range(30))  # every row once
    np.testing.assert_array_equal(images, table[order, 1:].reshape(-1, 1, 8, 8))
    np.testing.assert_array_equal(labels, table[order, 0].astype(np.int64))
    assert np.allclose(images, x[order], atol=1e-6)  # the bar images themselves, bars where they were drawn


def test_three_numbers_give_the_channels_and_two_a_signal_of_one_channel(tmp_path):
    x = np.arange(6 * 12, dtype=np.float32).reshape(6, 12)
    path = write_rows(tmp_path / "t.csv", [*(f"f{i}" for i in range(12)), "y"],
                      [[*(str(v) for v in row), str(i % 2)] for i, row in enumerate(x)])
    three = load("csv", root=str(path), shape=[3, 2, 2], val_fraction=0.0, test_fraction=0.5)
    assert three.meta.input_shape == (3, 2, 2)
    first = three.train[0][0].numpy()
    np.testing.assert_array_equal(first, x[int(first[0, 0, 0]) // 12].reshape(3, 2, 2))
    two = load("csv", root=str(path), shape=[2, 6], val_fraction=0.0, test_fraction=0.5)
    assert two.meta.input_shape == (1, 2, 6)  # [H, W]: one channel


@pytest.mark.parametrize("shape, fragment", [
    ("8x8", "csv shape = '8x8' is not allowed: use [H, W]"),
    ([64], "csv shape = [64] is not allowed"),
    ([1, 1, 8, 8], "csv shape = [1, 1, 8, 8] is not allowed"),
    ([0, 8], "csv shape = [0, 8] is not allowed"),
    ([True, 8], "csv shape = [True, 8] is not allowed"),
    ([9, 9], "shape = [9, 9] holds 81 values per row, but the rows have 64 features (every column but the label and "
             "the dropped ones, from 'pixel0'); 64 = 8 x 8: shape = [8, 8]"),
    ([2, 30], "shape = [2, 30] holds 60 values per row, but the rows have 64 features"),
])
def test_a_wrong_shape_is_one_line_naming_what_fits(tmp_path, shape, fragment):
    x, y = bar_images(10)
    path = write_pixels(tmp_path / "train.csv", x, y)
    with pytest.raises(DataError) as exc:
        load("csv", root=str(path), label="label", shape=shape)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


def test_a_cnn_on_flat_features_names_both_ways_out():
    with pytest.raises(ConfigError) as exc:
        build_cnn((784,), [{"type": "conv", "channels": 4, "kernel": 3}], [], 10)
    assert "set model.kind = 'mlp' for flat features, or, if they are the pixels of 28x28 images, " \
           "data.options.shape = [28, 28]" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        build_cnn((20,), [{"type": "conv", "channels": 4, "kernel": 3}], [], 10)
    assert str(exc.value).endswith("set model.kind = 'mlp' for flat features")  # 20 pixels are no square image


def test_fit_a_cnn_on_a_csv_of_pixels(workdir):
    x, y = bar_images(240)
    write_pixels(workdir / "bars.csv", x, y)
    blocks = "model.blocks=[{type='conv', channels=4, kernel=3, stride=1, padding=1}]"
    summary = _fit(["data.name=csv", "data.root=bars.csv", "data.options={label='label', shape=[8, 8]}",
                    "model.kind=cnn", blocks, "model.dense=[]", "train.epochs=12"], workdir / "run")
    state = _trained_well(workdir / "run", summary)
    assert [tuple(v.shape) for k, v in state.items() if k.endswith("weight")] == [(4, 1, 3, 3), (2, 256)]
    s = load("csv", root=str(workdir / "bars.csv"), label="label", shape=[8, 8], seed=0, val_fraction=0.1)
    own = float((_numpy_forward(state, s.test[0].numpy()).argmax(1) == s.test[1].numpy()).mean())
    assert summary["final"]["test_acc"] == pytest.approx(own, abs=1e-9) and own >= 0.9
