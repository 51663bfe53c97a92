"""``data.name = "csv"``: a user's own table from a CSV file (``.csv``, or ``.tsv`` with tabs) at ``data.root``.

The first row is the header. The ``label`` column (default: the last one) holds the labels: integers 0..K-1, or
text (class names, mapped to 0..K-1 in sorted order, as :func:`trainwell.data.user_files.class_ids` reads them);
every other column is a numeric feature, read as float32 with its values unchanged (no rescaling: ``preprocess``
scales them). ``shape`` arranges each row's features as an image or a signal for a CNN: ``[H, W]`` (one channel),
``[C, H, W]`` or ``[C, L]``, filled in the columns' order (row-major, as ``pixel0 .. pixel783`` of a 28x28 image are
written). The test split is a seeded ``test_fraction`` of the rows. A table of plain numbers is read by NumPy's C
parser (:mod:`trainwell.data.csv_numbers`), any other with the ``csv`` module: quoted fields, a UTF-8 byte-order
mark and blank lines are handled; a missing, non-numeric or non-finite cell and a row
of the wrong length are one-line errors naming the line and the column.
"""

from __future__ import annotations

import csv
import difflib
import math
from pathlib import Path

import numpy as np

from trainwell.data.csv_numbers import NumberTable, read_numbers
from trainwell.data.user_files import (
    DEFAULT_TEST_FRACTION,
    as_splits,
    class_ids,
    classes_option,
    data_file,
    hold_out_test,
)
from trainwell.errors import DataError

SUFFIXES = (".csv", ".tsv")
LABEL_NAMES = ("label", "labels", "target", "class", "y")  # a column so named, not last, is asked about
ID_NAMES = ("id", "index", "row", "rowid", "row_id")  # with a different integer on every row: a row id, no feature


class Table:
    """A CSV file's header, its rows (the cells as text) and each row's line number in the file."""

    def __init__(self, path: Path, header: list[str], rows: list[list[str]], lines: list[int]):
        self.path, self.header, self.rows, self.lines = path, header, rows, lines

    def column(self, j: int) -> list[str]:
        return [row[j] for row in self.rows]


def _delimiter(path: Path, delimiter: str | None) -> str:
    if delimiter is None:
        return "\t" if path.suffix.lower() == ".tsv" else ","
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\"\r\n":
        raise DataError(f"csv delimiter = {delimiter!r} is not allowed: use one character, such as ',', ';' or "
                        f"'\\t'")
    return delimiter


def read_table(path: Path, delimiter: str) -> Table:
    """The header and the rows of the CSV file at ``path`` (blank lines skipped; cells and names stripped)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter, skipinitialspace=True)
            header, rows, lines = None, [], []
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue
                if header is None:
                    header = [cell.strip() for cell in row]
                    _check_header(header, path)
                    continue
                if len(row) != len(header):
                    sep = next((c for c in (";", "\t", "|", ",") if c != delimiter and len(header) == 1 and
                                c in header[0]), None)
                    if sep is not None:  # a European table (;) read with commas: one column named "a;b;c"
                        raise DataError(f"{path}: line {reader.line_num} has {len(row)} fields and the header 1, "
                                        f"{header[0][:40]!r}: the file's delimiter looks like {sep!r}: set "
                                        f"data.options.delimiter = {sep!r}")
                    raise DataError(f"{path}: line {reader.line_num} has {len(row)} field{'s' * (len(row) != 1)}, "
                                    f"the header {len(header)}: every row needs one value per column (is "
                                    f"delimiter {delimiter!r} the file's?)")
                rows.append([cell.strip() for cell in row])
                lines.append(reader.line_num)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}): is it a CSV file? save it as UTF-8") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if header is None:
        raise DataError(f"{path}: the file is empty: it needs a header row and one row per example")
    if not rows:
        raise DataError(f"{path}: holds a header but 0 rows: it needs one row per example")
    return Table(path, header, rows, lines)


def _check_header(header: list[str], path: Path) -> None:
    if _looks_like_data(header):  # a table saved without its header (UCI's iris.data): a first example as names
        shown = ", ".join(repr(n) for n in header[:4]) + (", ..." if len(header) > 4 else "")
        raise DataError(f"{path}: the first row ({shown}) holds numbers where the column names go: is the header "
                        f"missing? the first row must name the columns (add a line such as x1,x2,...,label)")
    for j, name in enumerate(header):
        if not name:
            hint = " (a table saved with its row index? save it with index=False)" if j == 0 else \
                " (a delimiter ending every line? remove it)" if j == len(header) - 1 else ""
            raise DataError(f"{path}: column {j + 1} of the header has no name: the first row must name every "
                            f"column{hint}")
        if header.index(name) != j:
            raise DataError(f"{path}: the header names column {name!r} twice (columns {header.index(name) + 1} and "
                            f"{j + 1}): every column needs its own name")


def _looks_like_data(header: list[str]) -> bool:
    """Whether a header is a row of data: every name but at most one (a text label) a number, and the numbers not
    the names numbers make. Those run in order, as whole numbers (a DataFrame's column indices 0, 1, 2, ..., years)
    or evenly spaced (a spectrum's wavelengths); a row of measurements rarely does (iris' 5.1, 3.5, 1.4, 0.2 falls,
    but neither evenly nor by whole numbers)."""
    numbers = [float(_number(name)) for name in header if _number(name) is not None]
    if len(numbers) < 2 or len(numbers) < len(header) - 1:
        return False
    steps = [b - a for a, b in zip(numbers, numbers[1:], strict=False)]
    ordered = all(d > 0 for d in steps) or all(d < 0 for d in steps)
    whole = all(v == round(v) for v in numbers)
    even = max(steps) - min(steps) <= 0.01 * max(abs(d) for d in steps)
    return not (ordered and (whole or even))


def label_column(table: Table, label: str | None) -> int:
    """The index of the ``label`` column (default: the last); a name not in the header is an error that lists
    the columns and suggests the nearest."""
    if label is None:
        last = table.header[-1]
        named = [n for n in table.header[:-1] if n.lower() in LABEL_NAMES and last.lower() not in LABEL_NAMES]
        if named:  # Kaggle's mnist_train.csv: "label" first, then pixel0 .. pixel783
            raise DataError(f"{table.path}: the label is the last column, {last!r}, unless data.options.label names "
                            f"another, and column {named[0]!r} looks like the labels: set data.options.label = "
                            f"{named[0]!r} (or = {last!r} to keep the last)")
        return len(table.header) - 1
    if not isinstance(label, str):
        raise DataError(f"csv label = {label!r} is not allowed: use the label column's name (a string)")
    if label not in table.header:
        close = difflib.get_close_matches(label, table.header, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise DataError(f"{table.path}: no column {label!r}: {hint}the columns are {', '.join(table.header)}")
    return table.header.index(label)


def _label_values(table: Table | NumberTable, j: int) -> np.ndarray:
    """The label column as numbers when every cell is one, as text when none is; a mix is an error."""
    if isinstance(table, NumberTable):  # whole numbers as int64, as "3" is read from text (3.0 gives the same ids)
        column = table.cells[:, j]
        whole = np.isfinite(column).all() and bool((column == np.round(column)).all()) and \
            np.abs(column).max() < 2.0 ** 53
        return column.astype(np.int64) if whole else column
    cells = table.column(j)
    name = table.header[j]
    for cell, line in zip(cells, table.lines, strict=True):
        if not cell:
            raise DataError(f"{table.path}: line {line}: the label (column {name!r}) is empty: every row needs one")
    numbers = [_number(cell) for cell in cells]
    text = [i for i, v in enumerate(numbers) if v is None]
    if not text:
        bad = next((i for i, v in enumerate(numbers) if not math.isfinite(v)), None)
        if bad is not None:  # a missing label written as NaN
            raise DataError(f"{table.path}: line {table.lines[bad]}: the label (column {name!r}) is "
                            f"{cells[bad]!r}: every row needs a class id or name; fill or drop that row")
        return np.array(numbers)
    if len(text) < len(cells):
        k = next(i for i, v in enumerate(numbers) if v is not None)
        raise DataError(f"{table.path}: label column {name!r} mixes numbers (line {table.lines[k]}: {cells[k]!r}) "
                        f"and names (line {table.lines[text[0]]}: {cells[text[0]]!r}): use class ids 0..K-1 or "
                        f"names throughout")
    return np.array(cells)


def _number(cell: str) -> int | float | None:
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            pass
    return None


def _looks_like_id(name: str) -> bool:
    low = name.lower()
    return low in ID_NAMES or low.endswith(("_id", " id", "-id")) or (name.endswith("Id") and len(name) > 2)


def _dropped(table: Table, drop) -> set[int]:
    """The columns the ``drop`` option leaves out (None: none), each name checked against the header."""
    if drop is None:
        return set()
    if isinstance(drop, str) or not isinstance(drop, (list, tuple)) or not all(isinstance(n, str) for n in drop):
        raise DataError(f"csv drop = {drop!r} is not allowed: use a list of column names, e.g. ['id']")
    for name in drop:
        if name not in table.header:
            close = [h for h in table.header if h.lower() == name.lower()] or \
                difflib.get_close_matches(name, table.header, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise DataError(f"{table.path}: drop names no column {name!r}: {hint}the columns are "
                            f"{', '.join(table.header)}")
    return {table.header.index(name) for name in drop}


def _features(table: Table, label: int, drop=None) -> tuple[np.ndarray, list[str]]:
    """Every column but ``label`` and the ``drop`` ones as a float64 (N, D) array, each cell a finite number, and
    the columns' names. A column named like a row id (``id``, ``PassengerId``) whose every row holds another
    integer is refused unless ``drop`` is given: as a feature it tells the model the row's place in the file."""
    left_out = _dropped(table, drop)
    columns = [j for j in range(len(table.header)) if j != label and j not in left_out]
    if not columns:
        sep = next((c for c in (";", "\t", "|") if c in table.header[label]), None)
        hint = f" (its name holds {sep!r}: set data.options.delimiter = {sep!r})" if sep else ""
        raise DataError(f"{table.path}: holds only the label column {table.header[label]!r}{hint}: it needs at "
                        f"least one feature column")
    if isinstance(table, NumberTable):
        return _checked_numbers(table, columns, drop), [table.header[j] for j in columns]
    out = np.empty((len(table.rows), len(columns)), dtype=np.float64)
    for k, j in enumerate(columns):
        cells = table.column(j)
        try:
            out[:, k] = np.array(cells, dtype=np.float64)
        except ValueError:
            i = next(i for i, cell in enumerate(cells) if _number(cell) is None)
            what = "is empty (a missing value)" if not cells[i] else f"holds {cells[i]!r}"
            if cells[i].replace(",", "", 1).lstrip("-").isdigit() and "," in cells[i]:
                what += " (a decimal comma? write the numbers with a decimal point)"
            raise DataError(f"{table.path}: column {table.header[j]!r} is not numeric: line {table.lines[i]} "
                            f"{what}; every column but the label ({table.header[label]!r}) must be a number: fill, "
                            f"encode or drop it") from None
        bad = np.flatnonzero(~np.isfinite(out[:, k]))
        if bad.size:
            i = int(bad[0])
            raise DataError(f"{table.path}: column {table.header[j]!r}, line {table.lines[i]}: {cells[i]!r} is not "
                            f"a finite number: features must be finite; fill or drop that row")
        if np.abs(out[:, k]).max() > np.finfo(np.float32).max:
            i = int(np.argmax(np.abs(out[:, k])))
            raise DataError(f"{table.path}: column {table.header[j]!r}, line {table.lines[i]}: {cells[i]} is too "
                            f"large for float32 (at most 3.4e38): rescale that column")
        values = out[:, k]
        if drop is None and _looks_like_id(table.header[j]) and len(values) > 2 and \
                bool((values == np.round(values)).all()) and np.unique(values).size == len(values):
            name = table.header[j]
            raise DataError(f"{table.path}: column {name!r} looks like a row id (a different integer on every row): "
                            f"as a feature it tells the model where a row sits in the file, which can leak the "
                            f"labels of a sorted file; leave it out with data.options.drop = [{name!r}] (or keep it "
                            f"with data.options.drop = [])")
    return out, [table.header[j] for j in columns]


def _checked_numbers(table: NumberTable, columns: list[int], drop) -> np.ndarray:
    """The feature columns of a table read as numbers, each checked as :func:`_features` checks a column read as
    text; a column that fails a check raises :class:`_Reread` (the ``csv`` module's reading names the line)."""
    out = table.cells[:, columns]
    if not np.isfinite(out).all() or np.abs(out).max() > np.finfo(np.float32).max:
        raise _Reread
    for k, j in enumerate(columns):
        values = out[:, k]
        if drop is None and _looks_like_id(table.header[j]) and len(values) > 2 and \
                bool((values == np.round(values)).all()) and np.unique(values).size == len(values):
            raise _Reread
    return np.ascontiguousarray(out)


class _Reread(DataError):
    """A problem in a table read as numbers: the file is read again with the ``csv`` module, whose error names the
    line (every DataError from a :class:`NumberTable` is re-raised that way)."""


def _options(path: Path, classes, delimiter) -> tuple[int | None, str]:
    return classes_option(classes, "csv"), _delimiter(path, delimiter)


def _shape(shape) -> tuple[int, ...] | None:
    """The ``shape`` option checked: None, or 2 or 3 positive integers (``[H, W]`` gains a channel: ``(1, H, W)``)."""
    if shape is None:
        return None
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (list, tuple)) or len(shape) not in (2, 3) or \
            not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape):
        raise DataError(f"csv shape = {shape!r} is not allowed: use [H, W] (grayscale images), [C, H, W] or [C, L] "
                        f"(signals), positive integers whose product is the number of feature columns")
    return (1, *shape) if len(shape) == 2 else tuple(shape)


def _arranged(x: np.ndarray, shape: tuple[int, ...] | None, given, path: Path, features: list[str]) -> np.ndarray:
    """The (N, D) features as (N, *shape); their count must be the shape's product."""
    if shape is None:
        return x
    if math.prod(shape) != x.shape[1]:
        side = math.isqrt(x.shape[1])
        hint = f"; {x.shape[1]} = {side} x {side}: shape = [{side}, {side}]" if side * side == x.shape[1] else ""
        raise DataError(f"{path}: shape = {list(given)} holds {math.prod(shape)} values per row, but the rows have "
                        f"{x.shape[1]} features (every column but the label and the dropped ones, from "
                        f"{features[0]!r}){hint}")
    return x.reshape(len(x), *shape)


def load_csv(root: str | Path, seed: int = 0, label: str | None = None, classes: int | None = None,
             test_fraction: float | None = None, delimiter: str | None = None, drop: list[str] | None = None,
             shape: list[int] | None = None):
    """Read the CSV file at ``root``: ``(x_train, y_train, x_test, y_test, notes)``, the test split a random
    ``test_fraction`` of the rows (default 0.2) drawn with ``seed`` (``data.seed``); ``drop``: columns left out
    (an id, a name); ``shape``: each row's features as an image or signal (``[H, W]``, ``[C, H, W]``, ``[C, L]``)."""
    path = data_file(root, "csv", SUFFIXES, ".csv file with a header row")
    classes, delimiter = _options(path, classes, delimiter)
    arranged = _shape(shape)
    return _either_reading(path, delimiter,
                           lambda table: _loaded(table, label, classes, test_fraction, seed, drop, arranged, shape))


def _either_reading(path: Path, delimiter: str, use):
    """``use(table)`` of the file read as numbers (NumPy's parser) where it is a table of numbers, else, or when
    ``use`` finds a problem in it, of the ``csv`` module's reading, whose errors name the line."""
    numbers = read_numbers(path, delimiter)
    if numbers is not None:
        try:
            return use(numbers)
        except DataError:
            pass  # the same problem, found again below with its line number
    return use(read_table(path, delimiter))


def _loaded(table: Table | NumberTable, label, classes, test_fraction, seed, drop, arranged, shape):
    """:func:`load_csv`'s answer from the table read."""
    path = table.path
    _check_header(table.header, path)
    j = label_column(table, label)
    x, features = _features(table, j, drop)
    x = _arranged(x, arranged, shape, path, features)
    y, count, names = class_ids(_label_values(table, j), classes, f"{path}: label column {table.header[j]!r}")
    x_train, y_train, x_test, y_test = hold_out_test(x, y, test_fraction, seed, str(path))
    fraction = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
    notes = {"num_classes": count, "class_names": names, "file": str(path), "label_column": table.header[j],
             "features": features,
             "test_split": f"a random {fraction:g} of the rows (seeded by data.seed)"}
    return as_splits(x_train, y_train, x_test, y_test, notes)


def csv_classes(root: str | Path, label: str | None = None, classes: int | None = None,
                test_fraction: float | None = None, delimiter: str | None = None,
                drop: list[str] | None = None, shape: list[int] | None = None) -> int:
    """The class count :func:`load_csv` gives, from the label column alone (the features are not parsed)."""
    path = data_file(root, "csv", SUFFIXES, ".csv file with a header row")
    classes, delimiter = _options(path, classes, delimiter)
    _shape(shape)
    if classes is not None:
        return classes
    return _either_reading(path, delimiter, lambda table: _class_count(table, label))


def _class_count(table: Table | NumberTable, label) -> int:
    _check_header(table.header, table.path)
    j = label_column(table, label)
    return class_ids(_label_values(table, j), None, f"{table.path}: label column {table.header[j]!r}")[1]
