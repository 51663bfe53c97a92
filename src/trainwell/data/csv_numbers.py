"""A CSV table of numbers read by NumPy's C parser (``np.loadtxt``) instead of the ``csv`` module's rows of Python
strings: on a table shaped like Kaggle's MNIST ``train.csv`` (42,000 rows x 785 columns) several times faster,
with a smaller peak of memory (``benchmarks/csv_read.py``; RESULTS.md).

Only a file whose every row below the header is as many plain numbers as the header has names is read here; any
other (text labels, a quoted or missing cell, a ragged row, a blank-celled row, another encoding) is left to
:func:`trainwell.data.csv_file.read_table`, which reads every file and names the line at fault. Values are the
same either way for a cell both accept: each parses it as the nearest float64 (a cell only
Python's ``float`` reads, such as ``1_000``, sends the file to the ``csv`` module's reading).
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np


class NumberTable:
    """A CSV file's header and every cell below it as float64 (rows x columns); no line numbers (a problem found
    in it is reported from the ``csv`` module's reading of the file, which has them)."""

    lines = None

    def __init__(self, path: Path, header: list[str], cells: np.ndarray):
        self.path, self.header, self.cells = path, header, cells


def _header(path: Path, delimiter: str) -> tuple[list[str], int] | None:
    """The header's names (stripped) and the lines it spans (blank lines above it included)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter, skipinitialspace=True)
        for row in reader:
            if row and any(cell.strip() for cell in row):
                return [cell.strip() for cell in row], reader.line_num
    return None


def read_numbers(path: Path, delimiter: str) -> NumberTable | None:
    """The table at ``path`` when every row is numbers, else None (then read it with the ``csv`` module)."""
    try:
        found = _header(path, delimiter)
        if found is None:
            return None
        header, skip = found
        with warnings.catch_warnings():  # a header without rows: the csv module's reading says so
            warnings.simplefilter("ignore", UserWarning)
            cells = np.loadtxt(path, delimiter=delimiter, skiprows=skip, comments=None, quotechar=None, ndmin=2,
                               dtype=np.float64, encoding="utf-8-sig")
    except (ValueError, OSError, UnicodeDecodeError, csv.Error):
        return None
    if cells.shape[0] == 0 or cells.shape[1] != len(header):
        return None
    return NumberTable(path, header, cells)
