"""What the readers of a user's own data files share (``data.name = "npz"`` and ``"csv"``): the path check, labels
as class ids (integers as they are, text mapped in sorted order), the finiteness check of the features, and the
seeded test split drawn when the file holds none.

Example:
    >>> import numpy as np
    >>> ids, k, names = class_ids(np.array(["virginica", "setosa", "virginica"]), None, "iris.csv")
    >>> ids.tolist(), k, names
    ([1, 0, 1], 2, ['setosa', 'virginica'])
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainwell.data.file_kinds import READERS
from trainwell.data.files import check_labels
from trainwell.errors import DataError

DEFAULT_TEST_FRACTION = 0.2
MAX_CLASSES = 1_000_000  # a larger label is an id of another kind (a zip code, a year), not a class index


def data_file(root: str | Path, name: str, suffixes: tuple[str, ...], kind: str) -> Path:
    """``root`` as the path of an existing file whose suffix is one of ``suffixes`` (any case); else DataError.
    ``name`` is the dataset (``npz``), ``kind`` what the file is, for the messages."""
    if not root:
        raise DataError(f"data.root is empty: set it to the {kind} that data.name = {name!r} reads")
    path = Path(root)
    suffix = path.suffix.lower()
    if suffix not in suffixes:
        reader = READERS.get(suffix)
        hint = (f": {suffix} files are read by data.name = {reader!r}" if reader else
                ": save named arrays with np.savez(path, x=..., y=...) for data.name = 'npz'" if suffix == ".npy"
                else "")
        raise DataError(f"{path}: not a {' or '.join(suffixes)} file: data.name = {name!r} reads a {kind}{hint}")
    if path.is_dir():
        raise DataError(f"{path}: is a folder: data.name = {name!r} reads one {kind}; set data.root to the file")
    if not path.exists():
        raise DataError(f"{path}: file not found: data.root must name an existing {kind}")
    return path


def classes_option(classes, name: str) -> int | None:
    """The ``classes`` option checked: None (count from the labels) or an integer >= 2."""
    if classes is None:
        return None
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise DataError(f"{name} classes = {classes!r} is not allowed: use an integer >= 2 (or leave it out to "
                        f"count max label + 1)")
    return classes


def is_text(labels: np.ndarray) -> bool:
    """Whether labels are names (strings), not class ids."""
    return labels.dtype.kind in "US" or (labels.dtype == object and all(isinstance(v, str) for v in labels.flat))


def class_ids(labels, classes: int | None, source: str) -> tuple[np.ndarray, int, list[str] | None]:
    """Labels as int64 class ids, the class count K and the class names (None for numeric labels).

    Numeric labels must be integers in 0..K-1 (:func:`trainwell.data.files.check_labels`), K = ``classes`` or the
    largest label + 1. Text labels are mapped to 0..K-1 in sorted order (``sorted`` of the strings, so ``"B" <
    "a"``), K = ``classes`` or the number of names. A single class is refused: a classifier needs two.
    """
    arr = np.asarray(labels)
    if is_text(arr):
        names, ids = np.unique(arr.astype(str), return_inverse=True)
        names = [str(n) for n in names]
        if len(names) < 2:
            raise DataError(f"{source}: every label is {names[0]!r}: a classifier needs examples of at least 2 "
                            f"classes")
        if classes is not None and classes < len(names):
            raise DataError(f"{source}: classes = {classes} but the labels hold {len(names)} names "
                            f"({_listed(names)}): raise classes or leave it out")
        count = classes or len(names)
        return ids.astype(np.int64).reshape(arr.shape), count, names
    if arr.dtype.kind in "fiub" and arr.size:
        finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
        top = finite.max() if finite.size else 0
        if classes is None and top >= MAX_CLASSES:
            raise DataError(f"{source}: label {top.item()!r} is too large to be a class id: labels must be "
                            f"integers 0..K-1 (K up to {MAX_CLASSES:,}); map them to 0..K-1, or write them as text "
                            f"to have them mapped")
        _refuse_non_integers(arr, source)
        count = classes or max(int(top) + 1, 1)
        seen = np.unique(finite).size
        if classes is None and count > 2 * seen + 8:  # 1-based labels (count = seen + 1) and gaps pass
            raise DataError(f"{source}: {seen} distinct label values run up to {top.item()!r}: as class ids that "
                            f"is {count:,} classes, most never seen (a code such as 99999 for a missing label, or a "
                            f"regression target? trainwell trains classifiers): map the labels to 0..K-1, write them "
                            f"as text to have them mapped, or set data.options.classes = K")
    else:
        count = classes or 2  # no labels, or labels of a kind check_labels refuses
    ids = check_labels(arr, count, source)
    values = np.unique(ids)
    if values.size == 1:  # one class however many are declared: nothing to tell apart (a file with no labels)
        raise DataError(f"{source}: every label is {int(values[0])}: a classifier needs examples of at least 2 "
                        f"classes (is it the label column? a file without labels, such as a competition's "
                        f"test.csv, cannot be trained on)")
    return ids, count, None


def _refuse_non_integers(arr: np.ndarray, source: str) -> None:
    """Fractional labels are a regression target (or the wrong column), which a classifier cannot take."""
    if arr.dtype.kind != "f":
        return
    finite = arr[np.isfinite(arr)]
    fractional = finite[finite != np.round(finite)]
    if fractional.size:
        which = "is it the label column you meant (data.options.label)?" if "label column" in source else \
            "are these the labels?"
        raise DataError(f"{source}: label {fractional[0].item()!r} is not a class id: trainwell trains classifiers, "
                        f"whose labels are class ids (integers 0..K-1) or names, not a continuous target; {which}")


def _listed(names: list[str], most: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f", ... ({len(names)} in all)" if len(names) > most else "")


def first_not_finite(x: np.ndarray) -> tuple[int, ...] | None:
    """The index of the first NaN or infinite value of ``x`` (C order), or None when every value is finite."""
    bad = ~np.isfinite(x)
    if not bad.any():
        return None
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(bad.reshape(-1))), x.shape))


def hold_out_test(x: np.ndarray, y: np.ndarray, test_fraction: float | None, seed: int, source: str):
    """Split ``(x, y)`` into ``(x_train, y_train, x_test, y_test)``: a random ``test_fraction`` of the rows (at
    least one; default :data:`DEFAULT_TEST_FRACTION`) is the test split, drawn with a generator seeded by ``seed``
    (``data.seed``), so the same seed holds out the same rows."""
    import torch

    fraction = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise DataError(f"test_fraction = {fraction!r} is not allowed: use a number in (0, 1)")
    n = len(x)
    n_test = max(1, int(round(n * fraction)))
    if n_test >= n:
        raise DataError(f"{source}: {n} example{'s' * (n != 1)}: too few to hold out a test split of "
                        f"{fraction:g} and keep one to train on")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test]


SMALL_TEST = 20  # a test split this small measures accuracy in steps of 5% or more


def label_notes(y_train: np.ndarray, y_test: np.ndarray, count: int, names: list[str] | None = None) -> list[str]:
    """What a user should know about the labels as read, in words (empty when nothing stands out): class 0 never
    seen while the others are (1-based labels), classes only in the test split (by name where the labels were
    names), a test split too small to say much."""
    notes = []
    seen = set(np.unique(y_train).tolist())
    every = seen | set(np.unique(y_test).tolist())
    if 0 not in every and count == max(every) + 1:
        notes.append(f"class 0 appears in no split while 1..{count - 1} do: 1-based labels? the model has an "
                     f"output for class 0 that nothing trains; map them to 0..{count - 2}")
    only_test = sorted(every - seen)
    if only_test:
        several = len(only_test) > 1
        shown = [f"{c} ({names[c]})" if names and c < len(names) else str(c) for c in only_test]
        notes.append(f"class{'es' * several} {', '.join(shown)} appear{'s' * (not several)} only in "
                     f"the test split: the model never trains on {'them' if several else 'it'}, so "
                     f"{'their' if several else 'its'} test examples are always wrong")
    if 0 < len(y_test) < SMALL_TEST:
        notes.append(f"the test split holds {len(y_test)} example{'s' * (len(y_test) != 1)}: its accuracy moves in "
                     f"steps of {1 / len(y_test):.0%}")
    return notes


def as_splits(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, notes: dict):
    """The loader's answer: float32 inputs and int64 labels as tensors, then ``notes`` (for :class:`Meta`'s
    notes; ``num_classes`` in it is the class count; ``label_notes`` what stands out in the labels)."""
    import torch

    notes = {**notes, "label_notes": label_notes(y_train, y_test, notes["num_classes"], notes.get("class_names"))}

    def tensor(a, dtype):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype))

    return (tensor(x_train, np.float32), tensor(y_train, np.int64), tensor(x_test, np.float32),
            tensor(y_test, np.int64), notes)
