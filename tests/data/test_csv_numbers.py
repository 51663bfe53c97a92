"""A table of numbers is read by NumPy's C parser: the same arrays as the ``csv`` module's reading (the oracle),
whatever the formatting, and every problem still named by its line."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainwell.data import csv_file
from trainwell.data.csv_file import load_csv
from trainwell.errors import DataError


def _both(path, **options):
    """load_csv's answer, and its answer when the csv module reads the file (the numbers' reading turned off)."""
    assert csv_file.read_numbers(path, ",") is not None  # the file is one the numbers' reading takes
    fast = load_csv(path, **options)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(csv_file, "read_numbers", lambda path, delimiter: None)
        slow = load_csv(path, **options)
    return fast, slow


def _same(fast, slow):
    for a, b in zip(fast[:4], slow[:4], strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert bool((a == b).all())
    assert fast[4] == slow[4]


cell = st.one_of(st.integers(-10**6, 10**6).map(str),
                 st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False).map(repr),
                 st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False).map(lambda v: f"{v:.3e}"),
                 st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False).map(lambda v: f" {v:.4f} "))


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(st.lists(cell, min_size=3, max_size=3), st.integers(0, 2)), min_size=6, max_size=30),
       crlf=st.booleans(), bom=st.booleans(), blank=st.booleans())
@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_table_of_numbers_gives_what_the_csv_module_gives(tmp_path_factory, rows, crlf, bom, blank):
    rows = [*rows, (["1", "2", "3"], 0), (["4", "5", "6"], 1)]  # both classes present
    end = "\r\n" if crlf else "\n"
    lines = ["a,b,c,label"] + [",".join([*cells, str(k)]) for cells, k in rows]
    if blank:
        lines.insert(3, "")
    path = tmp_path_factory.mktemp("t") / "t.csv"
    path.write_bytes(("\ufeff" if bom else "").encode() + end.join(lines).encode() + end.encode())
    fast, slow = _both(path, seed=3)
    _same(fast, slow)


def test_the_numbers_reading_is_the_one_taken_for_a_table_of_numbers(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    path.write_text("x0,x1,y\n" + "".join(f"{i * 0.5},{i % 7},{i % 2}\n" for i in range(50)))

    def refuse(*args):
        raise AssertionError("the csv module read a table of numbers")
    monkeypatch.setattr(csv_file, "read_table", refuse)
    x, y, *_ = load_csv(path)
    assert x.shape == (40, 2) and set(y.tolist()) == {0, 1}
    assert csv_file.csv_classes(path) == 2


@pytest.mark.parametrize("body, fragment", [
    ("1,2,0\n3,nan,1\n", "column 'b', line 3: 'nan' is not a finite number"),
    ("1,2,0\n3,1e39,1\n", "column 'b', line 3: 1e39 is too large for float32"),
    ("1,2,0\n\n3,4,1,5\n", "line 4 has 4 fields, the header 3"),
    ("1,2,0\n3,,1\n", "column 'b' is not numeric: line 3 is empty"),
    ("1,2,0\n3,4,0.5\n", "label 0.5 is not a class id"),
])
def test_a_problem_in_a_table_of_numbers_is_named_by_its_line(tmp_path, body, fragment):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n" + body)
    with pytest.raises(DataError) as exc:
        load_csv(path)
    assert fragment in str(exc.value), str(exc.value)


def test_a_row_id_among_numbers_is_refused_with_its_name(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,a,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(10)))
    with pytest.raises(DataError, match="column 'id' looks like a row id"):
        load_csv(path)
    assert load_csv(path, drop=["id"])[0].shape[1] == 1


@pytest.mark.parametrize("header, fragment", [
    (",a,b,label", "column 1 of the header has no name"),  # pandas' to_csv with its index
    ("a,a,b,label", "the header names column 'a' twice"),
])
def test_a_header_of_numbers_is_checked_as_any_header(tmp_path, header, fragment):
    path = tmp_path / "t.csv"
    path.write_text(header + "\n" + "".join(f"{i},{i % 5 * 0.1},{i % 3},{i % 2}\n" for i in range(12)))
    assert csv_file.read_numbers(path, ",") is not None  # the numbers' reading takes this file
    with pytest.raises(DataError, match=fragment):
        load_csv(path)
    with pytest.raises(DataError, match=fragment):
        csv_file.csv_classes(path)


@pytest.mark.parametrize("first", ["5.1,3.5,1.4,0.2,0", "5.1,3.5,1.4,0.2,setosa"])
def test_a_table_without_its_header_is_named(tmp_path, first):
    path = tmp_path / "iris.data.csv"
    label = first.rsplit(",", 1)[1]
    path.write_text(first + "\n" + "".join(f"4.{i},3.{i % 7},1.{i % 5},0.{i % 3},{label if i % 2 else 'x'}\n"
                                           for i in range(10)).replace(",x\n", ",1\n" if label == "0" else ",y\n"))
    with pytest.raises(DataError, match="holds numbers where the column names go: is the header missing"):
        load_csv(path)


@pytest.mark.parametrize("header", ["0,1,2,label", "400,450,500,label", "2024,2023,2022,label", "0.5,1.0,1.5,y"])
def test_names_that_are_numbers_in_order_are_a_header(tmp_path, header):
    path = tmp_path / "t.csv"
    path.write_text(header + "\n" + "".join(f"{i},{i % 5},{i % 3},{i % 2}\n" for i in range(12)))
    x, *_ = load_csv(path, test_fraction=0.25)
    assert x.shape == (9, 3)  # every row an example


@pytest.mark.parametrize("text, fragment", [
    ("a;b;label\n4,1;3,2;0\n1,5;2,5;1\n", "the file's delimiter looks like ';': set data.options.delimiter = ';'"),
    ("a,b,label,\n1,2,0,\n3,4,1,\n", "column 4 of the header has no name: the first row must name every column (a "
                                     "delimiter ending every line? remove it)"),
])
def test_a_table_written_another_way_is_named_with_the_fix(tmp_path, text, fragment):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(DataError) as exc:
        load_csv(path)
    assert fragment in str(exc.value)


def test_a_missing_label_written_as_nan_is_named_by_its_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,0\n3,4,1\n5,6,nan\n7,8,1\n")
    with pytest.raises(DataError, match=r"line 4: the label \(column 'label'\) is 'nan': every row needs a class id"):
        load_csv(path)
