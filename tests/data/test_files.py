import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from trainwell.data import load
from trainwell.data.files import (
    load_cifar10,
    load_idx_dataset,
    parse_idx,
    read_cifar_batch,
    read_idx,
    safe_unpickle,
)
from trainwell.errors import DataError


def idx_bytes(array: np.ndarray) -> bytes:
    code = {np.uint8: 0x08, np.int8: 0x09, np.int32: 0x0C, np.float32: 0x0D}[array.dtype.type]
    header = struct.pack(">HBB", 0, code, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mnist(root, n_train=6, n_test=4, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            data = idx_bytes(arr)
            name = f"{split}-{kind}-ubyte"
            if gz:
                (root / (name + ".gz")).write_bytes(gzip.compress(data))
            else:
                (root / name).write_bytes(data)
        arrays[split] = (images, labels)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_files_load_raw_and_gz(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz=gz)
    s = load("mnist", root=str(tmp_path), val_fraction=0.0)
    assert s.meta.input_shape == (1, 28, 28)
    images, labels = arrays["t10k"]
    assert torch.allclose(s.test[0], torch.tensor(images / 255.0, dtype=torch.float32).unsqueeze(1))
    assert torch.equal(s.test[1], torch.tensor(labels, dtype=torch.int64))
    assert len(s.train[0]) == 6


def test_fashion_mnist_uses_the_same_format(tmp_path):
    write_mnist(tmp_path, gz=True, seed=1)
    assert load("fashion-mnist", root=str(tmp_path)).meta.num_classes == 10


def test_idx_reader_round_trips_other_dtypes(tmp_path):
    arr = np.arange(12, dtype=np.int32).reshape(3, 4) - 5
    path = tmp_path / "a.idx"
    path.write_bytes(idx_bytes(arr))
    np.testing.assert_array_equal(read_idx(path), arr)


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (b"\x00\x00", "truncated IDX file"),
        (b"\x01\x02\x08\x01" + b"\x00" * 8, "not an IDX file"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated IDX header"),
        (struct.pack(">HBBI", 0, 8, 1, 10) + b"\x00" * 5, "truncated"),
        (struct.pack(">HBBI", 0, 8, 1, 2) + b"\x00" * 5, "trailing bytes"),
    ],
)
def test_bad_idx_bytes_are_clear_errors(raw, fragment):
    with pytest.raises(DataError, match=fragment):
        parse_idx(raw, "f.idx")


def test_missing_truncated_and_bad_gzip_files_name_the_file(tmp_path):
    write_mnist(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: file not found"):
        load("mnist", root=str(tmp_path))
    write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="train-images-idx3-ubyte: IDX data truncated"):
        load("mnist", root=str(tmp_path))
    bad = tmp_path / "x.gz"
    bad.write_bytes(b"definitely not gzip")
    with pytest.raises(DataError, match="x.gz: not a valid gzip"):
        read_idx(bad)


def write_cifar(root, n=5, seed=0, protocol=2):
    rng = np.random.default_rng(seed)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        with open(root / name, "wb") as f:
            pickle.dump({b"batch_label": b"x", b"data": data, b"labels": labels,
                         b"filenames": [b"f.png"] * n}, f, protocol=protocol)
        batches[name] = (data, labels)
    return batches


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batches_load_through_the_restricted_unpickler(tmp_path, protocol):
    batches = write_cifar(tmp_path, protocol=protocol)
    s = load("cifar10", root=str(tmp_path), val_fraction=0.2)
    assert s.meta.input_shape == (3, 32, 32) and s.sizes() == {"train": 20, "val": 5, "test": 5}
    data, labels = batches["test_batch"]
    expected = torch.tensor(data.reshape(-1, 3, 32, 32) / 255.0, dtype=torch.float32)
    assert torch.allclose(s.test[0], expected) and s.test[1].tolist() == labels


def test_cifar_subfolder_is_found(tmp_path):
    sub = tmp_path / "cifar-10-batches-py"
    sub.mkdir()
    write_cifar(sub)
    assert len(load("cifar10", root=str(tmp_path)).test[0]) == 5


def test_a_cifar_folder_missing_batches_names_them_and_what_it_must_hold(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    (tmp_path / "test_batch").unlink()
    with pytest.raises(DataError) as caught:
        load_cifar10(tmp_path)
    assert str(caught.value) == (f"{tmp_path}: no data_batch_3, test_batch: data.root must hold the CIFAR-10 python "
                                 "batches (data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, "
                                 "test_batch), or the cifar-10-batches-py folder that cifar-10-python.tar.gz "
                                 "unpacks to")


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {_Exploit.marker}",))


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    _Exploit.marker = marker
    hostile = tmp_path / "data_batch_1"
    hostile.write_bytes(pickle.dumps({b"data": _Exploit(), b"labels": [0]}, protocol=2))
    with pytest.raises(DataError, match="refused to load .*not allowed"):
        read_cifar_batch(hostile)
    assert not marker.exists()
    payload = pickle.dumps(_Exploit())
    with pytest.raises(DataError, match="refused"):
        safe_unpickle(payload, "x")
    assert not marker.exists()


@pytest.mark.parametrize(
    "obj, fragment",
    [
        ([1, 2, 3], "expected a dict"),
        ({b"labels": [1]}, "missing b'data'"),
        ({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, "shape \\(N, 3072\\)"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "expected 2 labels"),
        ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [12]}, "integers in 0..9"),
    ],
)
def test_malformed_cifar_batches_are_clear_errors(tmp_path, obj, fragment):
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(DataError, match=fragment):
        read_cifar_batch(path)


def test_truncated_cifar_pickle_is_a_clear_error(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / "test_batch"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="test_batch: corrupt pickle"):
        read_cifar_batch(path)


def _mnist_with(root, split="train", images=None, labels=None):
    """Write valid MNIST files, then replace one split's images and/or labels with the given arrays."""
    write_mnist(root)
    if images is not None:
        (root / f"{split}-images-idx3-ubyte").write_bytes(idx_bytes(images))
    if labels is not None:
        (root / f"{split}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))


BAD_IDX = [
    ("label 200", dict(labels=np.array([0, 1, 2, 200, 4, 5], np.uint8)), "label 200 is out of range"),
    ("label 10", dict(labels=np.array([0, 1, 2, 10, 4, 5], np.uint8)), "label 10 is out of range"),
    ("label -1", dict(labels=np.array([0, 1, 2, -1, 4, 5], np.int8)), "label -1 is out of range"),
    ("label nan", dict(labels=np.array([0, 1, 2, np.nan, 4, 5], ">f4")), "label nan is not an integer"),
    ("0x0 pixels", dict(images=np.zeros((6, 0, 0), np.uint8)), "0x0 pixels"),
    ("no images", dict(images=np.zeros((0, 28, 28), np.uint8), labels=np.zeros(0, np.uint8)),
     "train-images-idx3-ubyte: holds 0 images: the training split needs at least one"),
    ("test shape", dict(split="t10k", images=np.zeros((4, 14, 14), np.uint8)), "both splits need the same shape"),
]


@pytest.mark.parametrize("case, change, fragment", BAD_IDX, ids=[c[0] for c in BAD_IDX])
def test_bad_idx_contents_are_one_line_errors(tmp_path, case, change, fragment):
    _mnist_with(tmp_path, **change)
    with pytest.raises(DataError, match=fragment):
        load_idx_dataset(tmp_path)


def test_idx_dims_that_would_overflow_int64_are_refused(tmp_path):
    raw = bytes([0, 0, 0x08, 3]) + (2**31 - 1).to_bytes(4, "big") * 3  # 2**93 bytes of pixels claimed
    with pytest.raises(DataError, match="over trainwell's limit"):
        parse_idx(raw)


@pytest.mark.parametrize("labels, fragment", [
    ([0, 1, 2, 3, 2**70], "label 1180591620717411303424 is not a class index"),
    ([0, 1, 2.5, 3, 4], "label 2.5 is not an integer"),
    ([0, 1, 2, 3, 10], "label 10 is out of range"),
    ([0, 1, 2, 3, -1], "label -1 is out of range"),
])
def test_bad_cifar_labels_are_one_line_errors(tmp_path, labels, fragment):
    write_cifar(tmp_path)
    data = np.zeros((5, 3072), np.uint8)
    with open(tmp_path / "data_batch_2", "wb") as f:
        pickle.dump({b"data": data, b"labels": labels}, f, protocol=2)
    with pytest.raises(DataError, match=fragment):
        load_cifar10(tmp_path)
