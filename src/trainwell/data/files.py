"""Readers for real dataset files on the user's disk: MNIST / Fashion-MNIST IDX and CIFAR-10 python batches.

IDX format: LeCun et al., http://yann.lecun.com/exdb/mnist/ (magic 0x0000 + dtype code + ndim, then big-endian
int32 dimensions, then the data). CIFAR-10: Krizhevsky 2009, the "python version" batches, which are pickles;
they are read with a restricted unpickler that admits only the NumPy array machinery those files contain, so a
hostile file cannot run code.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import zlib
from pathlib import Path

import numpy as np
import torch

from trainwell.errors import DataError

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise DataError(f"{path}: not a valid gzip file ({exc})") from None
    return raw


MAX_IDX_BYTES = 1 << 30  # 1 GiB of data per IDX file (MNIST's largest is 47 MB); documented in the README


def _read_exact(f, n: int) -> bytes:
    """Up to ``n`` bytes from ``f`` (fewer only at the end of the stream)."""
    chunks, left = [], n
    while left:
        chunk = f.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_idx_stream(f, source: str, total: int | None = None) -> np.ndarray:
    """Read IDX from the binary stream ``f``: the header first, then the size it declares is checked (against
    :data:`MAX_IDX_BYTES`, and against ``total``, the stream's length when known) before the data is read, in
    place, into one buffer of exactly that size. A gzip bomb is refused after its first 4 + 4 * ndim bytes."""
    head = _read_exact(f, 4)
    if len(head) < 4:
        raise DataError(f"{source}: truncated IDX file ({len(head)} bytes, the header alone needs 4)")
    zero, code, ndim = int.from_bytes(head[:2], "big"), head[2], head[3]
    if zero != 0 or code not in _IDX_DTYPES or ndim < 1:
        raise DataError(f"{source}: not an IDX file (magic bytes {head.hex()})")
    header = 4 + 4 * ndim
    raw_dims = _read_exact(f, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{source}: truncated IDX header ({4 + len(raw_dims)} bytes, need {header})")
    dims = tuple(int.from_bytes(raw_dims[4 * i : 4 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[code])
    size = math.prod(dims) * dtype.itemsize  # Python ints: dims near 2**32 cannot overflow
    expected = header + size
    if size > MAX_IDX_BYTES:
        raise DataError(f"{source}: the IDX header declares dims {dims} of {dtype.name}, {size:,} bytes of data: "
                        f"over trainwell's limit of {MAX_IDX_BYTES:,} bytes per file (not read); is it an IDX "
                        f"dataset file?")
    if total is not None and total != expected:
        problem = "truncated" if total < expected else "has trailing bytes"
        raise DataError(f"{source}: IDX data {problem} ({total} bytes, dims {dims} need {expected})")
    data = bytearray(size)
    view, got = memoryview(data), 0
    while got < size:
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    if got < size:
        raise DataError(f"{source}: IDX data truncated ({header + got} bytes, dims {dims} need {expected})")
    if f.read(1):
        raise DataError(f"{source}: IDX data has trailing bytes (more than the {expected} bytes dims {dims} need)")
    return np.frombuffer(data, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def parse_idx(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into an array, raising DataError on a bad header or a wrong length."""
    return _read_idx_stream(io.BytesIO(raw), source, total=len(raw))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (raw or ``.gz``), streaming: the header's declared size is checked before any data is
    read or inflated (see :func:`_read_idx_stream`)."""
    path = Path(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with f:
        if path.suffix != ".gz":
            try:
                return _read_idx_stream(f, str(path), total=os.fstat(f.fileno()).st_size)
            except OSError as exc:
                raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
        try:
            with gzip.GzipFile(fileobj=f) as g:
                return _read_idx_stream(g, str(path))
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise DataError(f"{path}: not a valid gzip file ({exc})") from None


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (root / name).exists():
            return root / name
    raise DataError(f"{root / stem}: file not found (also looked for .gz); put the IDX files in data.root")


def load_idx_dataset(root: str | Path):
    """Load MNIST-format IDX files (MNIST or Fashion-MNIST) from ``root`` as ``(N, 1, 28, 28)`` in [0, 1]."""
    if not root:
        raise DataError("data.root is empty: set it to the folder that holds the IDX files")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data.root is not a folder")
    out = []
    for split in ("train", "t10k"):
        img_path, lbl_path = _find(root, f"{split}-images-idx3-ubyte"), _find(root, f"{split}-labels-idx1-ubyte")
        images, labels = read_idx(img_path), read_idx(lbl_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(f"{img_path}: expected a 3-D uint8 image array, got shape {images.shape} {images.dtype}")
        if len(images) == 0:
            raise DataError(f"{img_path}: holds 0 images: the {'training' if split == 'train' else 'test'} split "
                            f"needs at least one")
        if images.shape[1] == 0 or images.shape[2] == 0:
            raise DataError(f"{img_path}: images of {images.shape[1]}x{images.shape[2]} pixels: need at least 1x1")
        if out and images.shape[1:] != tuple(out[0].shape[2:]):
            raise DataError(f"{img_path}: test images are {images.shape[1]}x{images.shape[2]} but training images "
                            f"are {out[0].shape[2]}x{out[0].shape[3]}: both splits need the same shape")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(f"{lbl_path}: expected {len(images)} labels, got shape {labels.shape}")
        y = check_labels(labels, 10, str(lbl_path))
        x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
        out += [x, torch.from_numpy(y)]
    return tuple(out)


def check_labels(labels, num_classes: int, source: str) -> np.ndarray:
    """Return ``labels`` as int64 if every one is an integer class index in ``0..num_classes-1``; else DataError."""
    try:
        arr = np.asarray(labels)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{source}: labels are not a list of integers") from None
    if arr.dtype == object:  # Python ints too large for any NumPy integer type (e.g. 2**70)
        big = next((v for v in arr.ravel() if not isinstance(v, (int, np.integer)) or not 0 <= v < num_classes),
                   None)
        raise DataError(f"{source}: label {big!r} is not a class index: labels must be integers in "
                        f"0..{num_classes - 1}")
    if arr.dtype.kind == "f":
        bad = arr[~np.isfinite(arr) | (arr != np.round(arr))] if arr.size else arr
        if bad.size:
            raise DataError(f"{source}: label {bad.ravel()[0].item()!r} is not an integer: labels must be integers in "
                            f"0..{num_classes - 1}")
    elif arr.dtype.kind not in "iub":
        raise DataError(f"{source}: labels of type {arr.dtype} are not class indices: use integers")
    if arr.size and (arr.min() < 0 or arr.max() > num_classes - 1):
        v = arr.min() if arr.min() < 0 else arr.max()
        raise DataError(f"{source}: label {v.item()!r} is out of range: labels must be integers in "
                        f"0..{num_classes - 1}")
    return arr.astype(np.int64)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global except those a CIFAR-10 batch (a dict of NumPy arrays) needs."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a dataset file")


def safe_unpickle(raw: bytes, source: str = "<bytes>"):
    """Unpickle ``raw`` with :class:`RestrictedUnpickler`; any refusal or corruption is a DataError."""
    try:
        return RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{source}: refused to load ({exc})") from None
    except Exception as exc:  # corrupt pickles raise many kinds of errors; all mean the same to the user
        raise DataError(f"{source}: corrupt pickle ({type(exc).__name__}: {exc})") from None


def read_cifar_batch(path: str | Path):
    """Read one CIFAR-10 python batch as ``(N, 3, 32, 32)`` floats in [0, 1] and int64 labels."""
    path = Path(path)
    obj = safe_unpickle(_read_bytes(path), str(path))
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict with b'data' and b'labels', got {type(obj).__name__}")
    data = obj.get(b"data", obj.get("data"))
    labels = obj.get(b"labels", obj.get("labels"))
    if not isinstance(data, np.ndarray) or labels is None:
        raise DataError(f"{path}: missing b'data' array or b'labels' list")
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise DataError(f"{path}: b'data' must be uint8 of shape (N, 3072), got {data.shape} {data.dtype}")
    y = check_labels(labels, 10, f"{path}: b'labels'")
    if y.shape != (len(data),):
        raise DataError(f"{path}: expected {len(data)} labels, got shape {y.shape}")
    x = torch.from_numpy(data.astype(np.float32) / 255.0).reshape(-1, 3, 32, 32)
    return x, torch.from_numpy(y)


CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


def load_cifar10(root: str | Path):
    """Load CIFAR-10 python batches (``data_batch_1..5``, ``test_batch``) from ``root`` or its
    ``cifar-10-batches-py`` subfolder. Missing training batches are an error."""
    if not root:
        raise DataError("data.root is empty: set it to the folder that holds the CIFAR-10 python batches")
    root = Path(root)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    if not root.is_dir():
        raise DataError(f"{root}: data.root is not a folder")
    missing = [name for name in CIFAR_BATCHES if not (root / name).exists()]
    if missing:  # one line naming every missing batch and what the folder must hold, not the first file alone
        raise DataError(f"{root}: no {', '.join(missing)}: data.root must hold the CIFAR-10 python batches "
                        f"({', '.join(CIFAR_BATCHES)}), or the cifar-10-batches-py folder that "
                        "cifar-10-python.tar.gz unpacks to")
    train = [read_cifar_batch(root / f"data_batch_{i}") for i in range(1, 6)]
    xte, yte = read_cifar_batch(root / "test_batch")
    return torch.cat([t[0] for t in train]), torch.cat([t[1] for t in train]), xte, yte
