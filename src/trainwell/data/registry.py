"""``load(name, ...)``: one entry point for every dataset trainwell knows, embedded, synthetic or on disk."""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainwell.errors import DataError

if TYPE_CHECKING:
    from trainwell.data.splits import Splits


class _Lazy:
    """A loader named by module and function, imported at its first call: listing and checking dataset names
    (``trainwell datasets``, a misspelt ``data.name``) then needs no torch."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    @property
    def target(self) -> Callable:
        return getattr(importlib.import_module(f"trainwell.data.{self.module}"), self.name)

    def __call__(self, *args, **kwargs):
        return self.target(*args, **kwargs)


@dataclass(frozen=True)
class FromFile:
    """A class count that depends on the user's file: ``reader(root, **options)`` reads it from the file at
    ``data.root`` (its labels only, not the whole dataset)."""

    reader: Callable[..., int]


@dataclass(frozen=True)
class DatasetSpec:
    """How to build one dataset: a loader and the facts about it.

    The loader returns ``(x_train, y_train, x_test, y_test)``, or those and a dict of notes for
    :class:`~trainwell.data.splits.Meta` (where ``num_classes``, when given, is the class count it read).
    """

    loader: Callable
    num_classes: int | Callable[[dict], int] | FromFile
    human_error: float | None = None
    enumerative: bool = False  # the whole pattern set; validation and test are the training set itself
    needs_root: bool = False
    description: str = ""


DATASETS: dict[str, DatasetSpec] = {
    "mnist1d": DatasetSpec(_Lazy("embedded", "load_mnist1d"), 10, human_error=0.04,
                           description="MNIST-1D, 4000 train / 1000 test signals of length 40 (generated offline)"),
    "digits": DatasetSpec(_Lazy("embedded", "load_digits"), 10, description="scikit-learn's 8x8 digits, 1797 images"),
    "spirals": DatasetSpec(_Lazy("synthetic", "spirals"), lambda o: o.get("arms", 3),
                           description="K interleaved 2-D spirals"),
    "xor": DatasetSpec(_Lazy("synthetic", "xor"), 2, enumerative=True, description="the four XOR patterns"),
    "parity": DatasetSpec(_Lazy("synthetic", "parity"), 2, enumerative=True,
                          description="all n-bit patterns, label = parity"),
    "encoder8": DatasetSpec(_Lazy("synthetic", "encoder8"), 8, enumerative=True,
                            description="the 8 one-hot patterns (8-3-8)"),
    "modular": DatasetSpec(_Lazy("synthetic", "modular"), lambda o: o.get("p", 53), description="(a + b) mod p"),
    "tc": DatasetSpec(_Lazy("synthetic", "tc"), 2, description="T vs C shapes at random positions and rotations"),
    "circles": DatasetSpec(_Lazy("circles", "circles"), 2,
                           description="two concentric circles (no linear model separates them)"),
    "mnist": DatasetSpec(_Lazy("files", "load_idx_dataset"), 10, needs_root=True,
                         description="MNIST IDX files from data.root"),
    "fashion-mnist": DatasetSpec(_Lazy("files", "load_idx_dataset"), 10, needs_root=True,
                                 description="Fashion-MNIST IDX files from data.root"),
    "cifar10": DatasetSpec(_Lazy("files", "load_cifar10"), 10, needs_root=True,
                           description="CIFAR-10 python batches from data.root"),
    "npz": DatasetSpec(_Lazy("npz_file", "load_npz"), FromFile(_Lazy("npz_file", "npz_classes")), needs_root=True,
                       description="your arrays: a .npz file (data.root) with x_train, y_train [, x_test, y_test] "
                                   "or x, y"),
    "csv": DatasetSpec(_Lazy("csv_file", "load_csv"), FromFile(_Lazy("csv_file", "csv_classes")), needs_root=True,
                       description="your table: a .csv file (data.root) with a header row; label = the last column "
                                   "or data.options.label"),
}


def spec_of(name: str) -> DatasetSpec:
    """The registry entry of dataset ``name``.

    Raises:
        DataError: unknown name (the message lists the known ones).
    """
    if name not in DATASETS:
        close = difflib.get_close_matches(str(name), list(DATASETS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise DataError(f"unknown dataset {name!r}: {hint}allowed are {', '.join(DATASETS)}")
    return DATASETS[name]


def num_classes(name: str, options: dict | None = None, root: str | None = None) -> int:
    """How many classes dataset ``name`` has with ``options`` (without loading it; a dataset whose count depends
    on the user's file reads it from the file at ``root``, its labels only).

    Example:
        >>> num_classes("spirals", {"arms": 5})
        5
    """
    spec = spec_of(name)
    options = options or {}
    if isinstance(spec.num_classes, FromFile):
        _check_options(name, spec, options)
        return int(spec.num_classes.reader(root or "", **options))
    return int(spec.num_classes(options) if callable(spec.num_classes) else spec.num_classes)


def _check_options(name: str, spec: DatasetSpec, options: dict) -> inspect.Signature:
    """The loader's signature, once every option in ``options`` is one of its parameters."""
    signature = inspect.signature(getattr(spec.loader, "target", spec.loader))
    allowed = [p for p in signature.parameters if p not in ("seed", "root")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        listed = ", ".join(allowed) if allowed else "none"
        close = difflib.get_close_matches(str(unknown[0]), allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise DataError(f"unknown option {unknown[0]!r} for dataset {name!r}: {hint}allowed options are {listed}")
    return signature


def _call_loader(name: str, spec: DatasetSpec, seed: int, root: str | None, options: dict):
    params = _check_options(name, spec, options).parameters
    kwargs = dict(options)
    if "seed" in params:
        kwargs["seed"] = seed
    if spec.needs_root:
        kwargs["root"] = root or ""
    try:
        return spec.loader(**kwargs)
    except TypeError as exc:
        raise DataError(f"bad option for dataset {name!r}: {exc}") from None


def load(
    name: str,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    root: str | None = None,
    label_noise: float = 0.0,
    random_labels: bool = False,
    random_pixels: bool = False,
    corrupt_seed: int = 1,
    **options,
) -> Splits:
    """Load dataset ``name`` as :class:`Splits` (train / val / test tensors and :class:`Meta`).

    Validation is a random ``val_fraction`` of the training data (seeded by ``seed``), except for the enumerative
    problems (xor, parity, encoder8), whose validation and test sets are the full pattern set. Label noise and
    random labels touch the training split only; random pixels touch every split.

    Example:
        >>> s = load("xor")
        >>> s.meta.num_classes, tuple(s.train[0].shape)
        (2, (4, 2))

    Raises:
        DataError: unknown name or option, bad value, or a missing/corrupt data file.
    """
    from trainwell.data import corrupt
    from trainwell.data.splits import Meta, Splits, split_validation

    spec = spec_of(name)
    xtr, ytr, xte, yte, *more = _call_loader(name, spec, seed, root, options)
    notes = dict(more[0]) if more else {}
    classes = int(notes.pop("num_classes")) if "num_classes" in notes else num_classes(name, options, root)
    if spec.enumerative:
        train, val = (xtr, ytr), (xtr.clone(), ytr.clone())
    else:
        if not 0.0 <= val_fraction < 1.0:
            raise DataError(f"val_fraction = {val_fraction} is not allowed: use a number in [0, 1)")
        train, val = split_validation(xtr, ytr, val_fraction, seed)
    test = (xte, yte)
    if random_labels:
        train = (train[0], corrupt.random_labels(train[1], classes, corrupt_seed))
    elif label_noise > 0:
        train = (train[0], corrupt.label_noise(train[1], label_noise, classes, corrupt_seed))
    if random_pixels:
        train, val, test = (
            (corrupt.random_pixels(x, corrupt_seed + i), y) for i, (x, y) in enumerate((train, val, test))
        )
    input_shape = tuple(train[0].shape[1:])
    meta = Meta(name=name, num_classes=classes, input_shape=input_shape, human_error=spec.human_error,
                notes={"enumerative": spec.enumerative, "dtype": str(train[0].dtype).replace("torch.", ""), **notes})
    return Splits(train=train, val=val, test=test, meta=meta)


def available() -> dict[str, str]:
    """Return ``{name: one-line description}`` for every dataset."""
    return {name: spec.description for name, spec in DATASETS.items()}


