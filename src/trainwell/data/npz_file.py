"""``data.name = "npz"``: a user's own arrays from a NumPy ``.npz`` archive (``np.savez``) at ``data.root``.

The archive holds ``x_train`` and ``y_train`` and optionally ``x_test`` and ``y_test`` (the names of keras'
``mnist.npz``), or ``x`` and ``y`` for one split (then ``x_test``, ``y_test`` may join them). Without a test split
one is drawn: a seeded ``test_fraction`` of the examples. Inputs are any numeric array of shape (N, ...),
converted to float32 with their values unchanged (no rescaling: ``preprocess`` scales them); ``layout`` says how
a 3-D or 4-D array is read. Labels are integers 0..K-1 or text (mapped in sorted order), as
:func:`trainwell.data.user_files.class_ids` reads them. The archive is opened with ``allow_pickle=False``: an
array of Python objects is refused, so a crafted file cannot run code.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from trainwell.data.user_files import (
    DEFAULT_TEST_FRACTION,
    as_splits,
    class_ids,
    classes_option,
    data_file,
    first_not_finite,
    hold_out_test,
    is_text,
)
from trainwell.errors import DataError

#: how a 3-D or 4-D ``x`` is read (the axes, N first); "auto" reads 3-D as grayscale images (N, H, W) and 4-D as
#: (N, C, H, W), and asks for a layout where that reading looks wrong
LAYOUTS = ("auto", "NHW", "NCL", "NCHW", "NHWC")


def _open(path: Path, wanted=None) -> tuple[list[str], dict[str, np.ndarray]]:
    """The names of the archive's arrays, and the arrays themselves (only those ``wanted(name)`` accepts), read
    without pickles."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a valid .npz archive ({exc}): save one with np.savez(path, x_train=..., "
                        f"y_train=...)") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: holds a single array (a .npy file), not named arrays: save them with "
                        f"np.savez(path, x_train=..., y_train=...)")
    arrays = {}
    with archive:
        for key in archive.files:
            if wanted is not None and not wanted(key):
                continue
            try:
                arrays[key] = archive[key]
            except ValueError:  # an object array: reading it would unpickle
                raise DataError(f"{path}: array {key!r} holds Python objects (a ragged list, or values of mixed "
                                f"types): only numeric and text arrays are read") from None
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise DataError(f"{path}: array {key!r} is damaged ({exc})") from None
        return list(archive.files), arrays


def _names(arrays, path: Path) -> tuple[str, str, str | None, str | None]:
    """The names of the training inputs and labels, and of the test ones (None when the file has none), from
    ``arrays``, the names the archive holds."""
    held = ", ".join(arrays) or "no arrays"
    if "x_train" in arrays and "x" in arrays:
        raise DataError(f"{path}: holds both 'x_train' and 'x': keep one (the file holds {held})")
    x, y = ("x_train", "y_train") if "x_train" in arrays or "y_train" in arrays else ("x", "y")
    for name in (x, y):
        if name not in arrays:
            raise DataError(f"{path}: no array {name!r}: the file holds {held}; data.name = 'npz' reads x_train, "
                            f"y_train (and x_test, y_test) or x, y")
    if ("x_test" in arrays) != ("y_test" in arrays):
        have, lack = ("x_test", "y_test") if "x_test" in arrays else ("y_test", "x_test")
        raise DataError(f"{path}: holds {have!r} but no {lack!r}: a test split needs both (the file holds {held})")
    return (x, y, "x_test", "y_test") if "x_test" in arrays else (x, y, None, None)


def _read(path: Path, labels_only: bool):
    """The names :func:`_names` picks and those arrays (the label arrays alone with ``labels_only``); any other
    array in the file is not read."""
    held, _ = _open(path, wanted=lambda key: False)
    names = _names(held, path)
    wanted = {n for n in (names[1::2] if labels_only else names) if n is not None}
    return names, _open(path, wanted=wanted.__contains__)[1]


def _inputs(x: np.ndarray, name: str, path: Path, layout: str) -> np.ndarray:
    """``x`` checked (numeric, finite, N examples of at least one value) and arranged as ``layout`` says."""
    where = f"{path}: {name}"
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where} has dtype {x.dtype}: inputs must be numbers (bool, integer or float)")
    if x.ndim < 2:
        raise DataError(f"{where} has shape {x.shape}: need one row per example, (N, D) features or (N, C, H, W) "
                        f"images; one feature per example is x.reshape(-1, 1)")
    if len(x) == 0:
        raise DataError(f"{where} holds 0 examples: it needs at least one")
    if 0 in x.shape[1:]:
        raise DataError(f"{where} has shape {x.shape}: each example needs at least one value")
    bad = first_not_finite(x) if x.dtype.kind == "f" else None
    if bad is not None:
        raise DataError(f"{where} holds {x[bad]} at example {bad[0]} (index {bad}): inputs must be finite; drop "
                        f"or fill that example")
    with np.errstate(over="ignore"):  # a value beyond float32's range becomes inf, named below
        converted = x.astype(np.float32)
    bad = first_not_finite(converted)
    if bad is not None:
        raise DataError(f"{where} holds {x[bad].item():g} at example {bad[0]} (index {bad}): too large for "
                        f"float32 (at most 3.4e38); rescale the inputs")
    return _arranged(converted, where, layout)


def _arranged(x: np.ndarray, where: str, layout: str) -> np.ndarray:
    """(N, H, W) gets a channel axis, (N, H, W, C) has it moved first; (N, C, L) and (N, C, H, W) stay."""
    if layout == "auto":
        if x.ndim == 3 and x.shape[1] == 1:
            raise DataError(f"{where} has shape {x.shape}: images 1 pixel high, or signals of 1 channel? set "
                            f"data.options.layout = 'NCL' (signals) or 'NHW' (images)")
        if x.ndim == 4 and x.shape[3] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
            raise DataError(f"{where} has shape {x.shape}: are the channels last? set data.options.layout = "
                            f"'NHWC' to move them first, or 'NCHW' to read {x.shape[1]} channels")
        layout = {3: "NHW", 4: "NCHW"}.get(x.ndim, layout)
    elif len(layout) != x.ndim:
        raise DataError(f"{where} has shape {x.shape}: layout = {layout!r} is for {len(layout)}-D arrays; "
                        f"use 'auto'")
    if layout == "NHW":
        return x[:, None]
    if layout == "NHWC":
        return np.moveaxis(x, 3, 1)
    return x


def _labels(y: np.ndarray, name: str, path: Path) -> np.ndarray:
    """``y`` as one label per example: (N,) or (N, 1) (keras' cifar10.npz keeps its labels so)."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        hint = " (one-hot rows? use y.argmax(1))" if y.ndim == 2 else ""
        raise DataError(f"{path}: {name} has shape {y.shape}: labels must be one class per example, shape (N,)"
                        f"{hint}")
    return y


def _options(classes, layout) -> int | None:
    if layout not in LAYOUTS:
        raise DataError(f"npz layout = {layout!r} is not allowed: use one of {', '.join(LAYOUTS)}")
    return classes_option(classes, "npz")


def _class_ids(arrays: dict, names, classes: int | None, path: Path):
    """The training and test labels as class ids (read together: one mapping of names, one count), the count and
    the names."""
    labels = [(_labels(arrays[y], y, path), y) for y in (names[1], names[3]) if y is not None]
    text = [name for y, name in labels if is_text(y)]
    if text and len(text) < len(labels):  # concatenated, numbers would turn into names beside the real ones
        numeric = next(name for _, name in labels if name not in text)
        raise DataError(f"{path}: {text[0]} holds names but {numeric} numbers: give the labels of both splits as "
                        f"class ids 0..K-1, or both as names")
    joined = np.concatenate([y for y, _ in labels]) if len(labels) > 1 else labels[0][0]
    source = f"{path}: {' and '.join(name for _, name in labels)}"
    ids, count, class_names = class_ids(joined, classes, source)
    n = len(labels[0][0])
    return ids[:n], ids[n:], count, class_names


def _check_lengths(arrays: dict, names, path: Path) -> None:
    for x, y in ((names[0], names[1]), (names[2], names[3])):
        if x is not None and len(arrays[x]) != len(_labels(arrays[y], y, path)):
            raise DataError(f"{path}: {x} holds {len(arrays[x])} examples but {y} {len(arrays[y])} labels: need "
                            f"one label per example")


def load_npz(root: str | Path, seed: int = 0, classes: int | None = None, test_fraction: float | None = None,
             layout: str = "auto"):
    """Read the archive at ``root``: ``(x_train, y_train, x_test, y_test, notes)`` with float32 inputs and int64
    labels; ``classes`` fixes the class count (default: the largest label + 1, or the number of label names)."""
    path = data_file(root, "npz", (".npz",), ".npz archive (np.savez)")
    classes = _options(classes, layout)
    names, arrays = _read(path, labels_only=False)
    x_name, _, x_test_name, y_test_name = names
    if x_test_name is not None and test_fraction is not None:
        raise DataError(f"{path}: holds x_test and y_test, so no test split is drawn: drop "
                        f"data.options.test_fraction")
    x = _inputs(arrays[x_name], x_name, path, layout)
    _check_lengths(arrays, names, path)
    y, y_test, count, class_names = _class_ids(arrays, names, classes, path)
    if x_test_name is None:
        x, y, x_test, y_test = hold_out_test(x, y, test_fraction, seed, f"{path}: {x_name}")
        fraction = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
        split = f"a random {fraction:g} of {x_name} (seeded by data.seed)"
    else:
        x_test = _inputs(arrays[x_test_name], x_test_name, path, layout)
        if x_test.shape[1:] != x.shape[1:]:
            raise DataError(f"{path}: {x_test_name} examples have shape {arrays[x_test_name].shape[1:]} but "
                            f"{x_name} examples {arrays[x_name].shape[1:]}: both splits need the same shape")
        split = f"{x_test_name} and {y_test_name} from the file"
    notes = {"num_classes": count, "class_names": class_names, "file": str(path), "test_split": split}
    return as_splits(x, y, x_test, y_test, notes)


def npz_classes(root: str | Path, classes: int | None = None, test_fraction: float | None = None,
                layout: str = "auto") -> int:
    """The class count :func:`load_npz` gives, read from the archive's label arrays alone (no inputs are read)."""
    path = data_file(root, "npz", (".npz",), ".npz archive (np.savez)")
    classes = _options(classes, layout)
    if classes is not None:
        return classes
    names, arrays = _read(path, labels_only=True)
    return _class_ids(arrays, names, None, path)[2]
