"""A user's own data: ``data.name = "npz"`` (arrays saved with np.savez) and ``"csv"`` (a table with a header),
read by the library and trained on by ``trainwell fit``, and every bad file as a one-line error."""

import csv
import json

import numpy as np
import pytest
import torch

from trainwell.cli import main
from trainwell.data import load
from trainwell.data.registry import num_classes
from trainwell.errors import DataError

SPECIES = ("setosa", "versicolor", "virginica")


def write_iris(path, n_per_class=20, seed=0, species=SPECIES, spread=0.4):
    """An iris-like table: three numeric columns, the species (text) last; class k centred at 3k."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, name in enumerate(species):
        for _ in range(n_per_class):
            rows.append([f"{v:.3f}" for v in rng.normal(3.0 * k, spread, 3)] + [name])
    rng.shuffle(rows)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sepal_length", "sepal_width", "petal_length", "species"])
        writer.writerows(rows)
    return rows


def write_rows(path, header, rows, delimiter=","):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def separable(n, dims=4, seed=0):
    """Gaussian inputs labelled by the sign of x0 + x1: a linear model separates them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dims))
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def bar_images(n, seed=0):
    """(n, 1, 8, 8) images: a bright vertical bar (label 0) or horizontal bar (label 1) at a random place."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.1, size=(n, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 2, size=n)
    where = rng.integers(0, 8, size=n)
    for i in range(n):
        if y[i] == 0:
            x[i, 0, :, where[i]] += 1.0
        else:
            x[i, 0, where[i], :] += 1.0
    return x, y


# --- npz ---------------------------------------------------------------------------------------------------------


def test_npz_with_its_own_test_split_is_read_as_it_is(tmp_path):
    rng = np.random.default_rng(0)
    x_train, x_test = rng.integers(0, 256, (30, 6, 6), dtype=np.uint8), rng.integers(0, 256, (10, 6, 6), np.uint8)
    y_train, y_test = rng.integers(0, 4, 30).astype(np.uint8), np.array([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    np.savez(tmp_path / "digits.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    s = load("npz", root=str(tmp_path / "digits.npz"), val_fraction=0.0)
    # (N, H, W) images get a channel axis; the pixels stay 0..255 (scaling is preprocess's job)
    assert s.meta.input_shape == (1, 6, 6) and s.train[0].dtype == torch.float32
    assert torch.equal(s.test[0], torch.tensor(x_test, dtype=torch.float32).unsqueeze(1))
    assert torch.equal(s.test[1], torch.tensor(y_test)) and s.train[1].dtype == torch.int64
    # the training split is shuffled (validation is drawn from it): the same examples, each with its label
    pairs = sorted((row.tobytes(), int(label)) for row, label in zip(x_train.astype(np.float32), y_train, strict=True))
    assert sorted((row[0].numpy().tobytes(), int(label)) for row, label in zip(*s.train, strict=True)) == pairs
    assert s.meta.num_classes == 5  # the largest label of either split + 1
    assert s.meta.notes["class_names"] is None and "from the file" in s.meta.notes["test_split"]


def test_npz_of_one_split_holds_out_a_seeded_test_fraction_and_validation(tmp_path):
    n = 50
    x = np.arange(n, dtype=np.float64).reshape(n, 1) * np.ones((1, 3))  # row i is (i, i, i): rows can be traced
    y = np.arange(n) % 3
    np.savez(tmp_path / "one.npz", x=x, y=y)
    s = load("npz", root=str(tmp_path / "one.npz"), seed=4, val_fraction=0.1)
    ids = {split: s_[0][:, 0].long().tolist() for split, s_ in (("train", s.train), ("val", s.val), ("test", s.test))}
    assert len(ids["test"]) == 10 and len(ids["val"]) == 4 and len(ids["train"]) == 36
    assert sorted(ids["train"] + ids["val"] + ids["test"]) == list(range(n))  # disjoint, and nothing lost
    assert all(int(label) == i % 3 for split in (s.train, s.val, s.test) for i, label in
               zip(split[0][:, 0].long().tolist(), split[1].tolist(), strict=True))  # labels travel with their rows
    again = load("npz", root=str(tmp_path / "one.npz"), seed=4, val_fraction=0.1)
    assert torch.equal(again.test[0], s.test[0])
    other = load("npz", root=str(tmp_path / "one.npz"), seed=5, val_fraction=0.1)
    assert not torch.equal(other.test[0], s.test[0])
    half = load("npz", root=str(tmp_path / "one.npz"), val_fraction=0.0, test_fraction=0.5)
    assert half.sizes() == {"train": 25, "val": 0, "test": 25}


@pytest.mark.parametrize("shape, layout, expected", [
    ((12, 5), "auto", (5,)),                    # (N, D) features for an MLP
    ((12, 7, 9), "auto", (1, 7, 9)),            # (N, H, W) grayscale images: a channel axis is added
    ((12, 2, 40), "NCL", (2, 40)),              # (N, C, L) signals, as they are
    ((12, 3, 8, 8), "auto", (3, 8, 8)),         # (N, C, H, W) images, as they are
    ((12, 8, 6, 3), "NHWC", (3, 8, 6)),         # channels last (keras' cifar10.npz): moved first
])
def test_npz_input_layouts(tmp_path, shape, layout, expected):
    x = np.random.default_rng(0).normal(size=shape)
    np.savez(tmp_path / "a.npz", x_train=x, y_train=np.arange(12) % 2, x_test=x[:4], y_test=np.arange(4) % 2)
    s = load("npz", root=str(tmp_path / "a.npz"), val_fraction=0.0, layout=layout)
    assert s.meta.input_shape == expected
    if layout == "NHWC":
        assert torch.equal(s.test[0], torch.tensor(x[:4], dtype=torch.float32).permute(0, 3, 1, 2))


@pytest.mark.parametrize("shape, fragment", [
    ((12, 1, 40), "images 1 pixel high, or signals of 1 channel? set data.options.layout = 'NCL'"),
    ((12, 32, 32, 3), "are the channels last? set data.options.layout = 'NHWC'"),
])
def test_npz_layout_that_cannot_be_told_is_asked_for(tmp_path, shape, fragment):
    np.savez(tmp_path / "a.npz", x=np.zeros(shape), y=np.arange(12) % 2)
    with pytest.raises(DataError, match=fragment.replace("?", r"\?")):
        load("npz", root=str(tmp_path / "a.npz"))


def test_keras_style_labels_of_shape_n_by_1_a_class_count_option_and_other_arrays_left_alone(tmp_path):
    x, y = separable(40)
    notes = np.array([{"made by": "me"}], dtype=object)  # another array of the user's, never read (a pickle)
    np.savez(tmp_path / "k.npz", x_train=x, y_train=y.reshape(-1, 1), notes=notes)
    s = load("npz", root=str(tmp_path / "k.npz"), classes=5)
    assert s.meta.num_classes == 5 and s.train[1].ndim == 1
    assert num_classes("npz", {"classes": 5}, str(tmp_path / "k.npz")) == 5
    assert num_classes("npz", {}, str(tmp_path / "k.npz")) == load("npz", root=str(tmp_path / "k.npz")).meta.num_classes


def test_npz_text_labels_are_mapped_in_sorted_order_across_both_splits(tmp_path):
    x = np.zeros((4, 2))
    np.savez(tmp_path / "t.npz", x_train=x, y_train=np.array(["dog", "cat", "dog", "cat"]), x_test=x[:2],
             y_test=np.array(["emu", "cat"]))
    s = load("npz", root=str(tmp_path / "t.npz"), val_fraction=0.0)
    assert s.meta.notes["class_names"] == ["cat", "dog", "emu"]
    assert sorted(s.train[1].tolist()) == [0, 0, 1, 1] and s.test[1].tolist() == [2, 0]
    assert num_classes("npz", {}, str(tmp_path / "t.npz")) == 3


# --- csv ---------------------------------------------------------------------------------------------------------


def test_csv_with_species_names_maps_them_in_sorted_order(tmp_path):
    rows = write_iris(tmp_path / "iris.csv", species=("virginica", "setosa", "versicolor"))
    s = load("csv", root=str(tmp_path / "iris.csv"), val_fraction=0.0)
    assert s.meta.num_classes == 3 and s.meta.input_shape == (3,)
    assert s.meta.notes["class_names"] == ["setosa", "versicolor", "virginica"]
    assert s.meta.notes["features"] == ["sepal_length", "sepal_width", "petal_length"]
    assert s.sizes() == {"train": 48, "val": 0, "test": 12}
    ids = {name: i for i, name in enumerate(sorted(SPECIES))}
    table = {tuple(np.float32(float(v)) for v in r[:3]): ids[r[3]] for r in rows}  # every row, as read by hand
    for x, y in (s.train, s.test):
        for features, label in zip(x.numpy(), y.tolist(), strict=True):
            assert table[tuple(features)] == label
    assert num_classes("csv", {}, str(tmp_path / "iris.csv")) == 3


def test_csv_integer_labels_a_named_label_column_tabs_quotes_and_a_bom(tmp_path):
    path = tmp_path / "t.tsv"
    rows = [[str(i % 4), f"{i * 0.5}", "1e-3", f"{-i}"] for i in range(20)]
    write_rows(path, ["kind", "a", "b", "c"], rows, delimiter="\t")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # a BOM, as spreadsheet programs write it
    s = load("csv", root=str(path), label="kind", val_fraction=0.0, test_fraction=0.25)
    assert s.meta.num_classes == 4 and s.meta.notes["class_names"] is None and s.meta.input_shape == (3,)
    assert sorted(s.train[1].tolist() + s.test[1].tolist()) == sorted(i % 4 for i in range(20))
    both = torch.cat([s.train[0], s.test[0]])
    assert sorted(both[:, 0].tolist()) == [i * 0.5 for i in range(20)]
    assert num_classes("csv", {"label": "kind"}, str(path)) == 4
    quoted = write_rows(tmp_path / "q.csv", ["x, first", "label"], [["1.5", "a b"], ["2", "c, d"]])
    s = load("csv", root=str(quoted), val_fraction=0.0, test_fraction=0.5)
    assert s.meta.notes["class_names"] == ["a b", "c, d"] and s.meta.notes["features"] == ["x, first"]


def test_a_label_column_first_as_in_kaggles_mnist_csv_is_read_once_named(tmp_path):
    rows = [[str(i % 10), *(str((i * 7 + j) % 256) for j in range(4))] for i in range(20)]
    path = write_rows(tmp_path / "mnist_train.csv", ["label", "pixel0", "pixel1", "pixel2", "pixel3"], rows)
    s = load("csv", root=str(path), label="label", val_fraction=0.0)
    assert s.meta.num_classes == 10 and s.meta.input_shape == (4,) and s.meta.notes["label_column"] == "label"
    assert num_classes("csv", {"label": "label"}, str(path)) == 10


def test_summary_without_data_reads_the_class_count_from_the_file(workdir, capsys):
    write_iris(workdir / "iris.csv")
    assert main(["summary", "--set", "data.name=csv", "--set", "data.root=iris.csv", "--set", "model.kind=mlp",
                 "--set", "model.hidden=[4]", "--input-shape", "3", "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    assert layers[-1]["output_shape"] == [3]  # three species, three outputs


# --- bad files: one line naming the file and what is allowed -----------------------------------------------------


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _bad_npz_cases():
    x, y = np.zeros((6, 3)), np.arange(6) % 2
    nan, inf = x.copy(), x.copy()
    nan[4, 1], inf[2, 2] = np.nan, np.inf
    return {
        "missing x_train": (dict(x_train=x), "no array 'y_train': the file holds x_train"),
        "none of the names": (dict(inputs=x, targets=y), "no array 'x': the file holds inputs, targets"),
        "x_test without y_test": (dict(x=x, y=y, x_test=x), "holds 'x_test' but no 'y_test'"),
        "both namings": (dict(x=x, y=y, x_train=x, y_train=y), "holds both 'x_train' and 'x'"),
        "nan input": (dict(x=nan, y=y), "x holds nan at example 4 (index (4, 1))"),
        "inf input": (dict(x=inf, y=y), "x holds inf at example 2"),
        "too large for float32": (dict(x=x + 1e300, y=y), "too large for float32"),
        "text inputs": (dict(x=np.array([["a"]] * 6), y=y), "x has dtype <U1: inputs must be numbers"),
        "one value per example": (dict(x=np.zeros(6), y=y), "x has shape (6,): need one row per example"),
        "zero examples": (dict(x=np.zeros((0, 3)), y=np.zeros(0, int)), "x holds 0 examples"),
        "lengths differ": (dict(x=x, y=y[:5]), "x holds 6 examples but y 5 labels"),
        "label out of range": (dict(x=x, y=np.array([0, 1, -1, 0, 1, 0])), "label -1 is out of range"),
        "fractional label": (dict(x=x, y=np.array([0, 1, 0.5, 0, 1, 0])),
                                 "label 0.5 is not a class id: trainwell trains classifiers"),
        "one-hot labels": (dict(x=x, y=np.eye(2)[y]), "use y.argmax(1)"),
        "a single class": (dict(x=x, y=np.zeros(6, int)), "every label is 0: a classifier needs examples of"),
        "test shape differs": (dict(x=x, y=y, x_test=np.zeros((2, 4)), y_test=y[:2]), "both splits need the same"),
        "objects": (dict(x=np.array([[1], [1, 2]] * 3, dtype=object), y=y), "array 'x' holds Python objects"),
    }


@pytest.mark.parametrize("case", list(_bad_npz_cases()))
def test_bad_npz_is_a_one_line_error_naming_the_file(tmp_path, case):
    arrays, fragment = _bad_npz_cases()[case]
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError) as exc:
        load("npz", root=str(path))
    message = str(exc.value)
    assert str(path) in message and fragment in message and "\n" not in message


def _bad_csv_cases():
    head = ["a", "b", "label"]
    return {
        "ragged row": ((head, [["1", "2", "x"], ["1", "2"]]), "line 3 has 2 fields, the header 3"),
        "non-numeric feature": ((head, [["1", "red", "x"], ["1", "2", "y"]]),
                                "column 'b' is not numeric: line 2 holds 'red'"),
        "missing value": ((head, [["1", "2", "x"], ["", "2", "y"]]), "column 'a' is not numeric: line 3 is empty"),
        "nan feature": ((head, [["1", "2", "x"], ["1", "nan", "y"]]), "column 'b', line 3: 'nan' is not a finite"),
        "inf feature": ((head, [["inf", "2", "x"], ["1", "2", "y"]]), "column 'a', line 2: 'inf' is not a finite"),
        "no rows": ((head, []), "holds a header but 0 rows"),
        "label out of range": ((head, [["1", "2", "-2"], ["1", "2", "1"]]), "label -2 is out of range"),
        "fractional label": ((head, [["1", "2", "1.5"], ["1", "2", "0"]]),
                             "label 1.5 is not a class id: trainwell trains classifiers"),
        "a missing-label code": ((head, [["1", "2", "0"], ["1", "2", "1"], ["1", "2", "99999"]]),
                                 "3 distinct label values run up to 99999: as class ids that is 100,000 classes"),
        "semicolons": ((["a;b;label"], [["1;2;x"], ["2;3;y"]]), "set data.options.delimiter = ';'"),
        "decimal comma": ((head, [["0,5", "2", "x"], ["1", "2", "y"]]), "a decimal comma?"),
        "a row id": ((["PassengerId", "age", "label"], [["1", "30", "0"], ["2", "40", "1"], ["3", "50", "0"]]),
                     "column 'PassengerId' looks like a row id"),
        "labels of both kinds": ((head, [["1", "2", "0"], ["1", "2", "cat"]]),
                                 "mixes numbers (line 2: '0') and names (line 3: 'cat')"),
        "empty label": ((head, [["1", "2", ""], ["1", "2", "a"]]), "line 2: the label (column 'label') is empty"),
        "only a label": ((["label"], [["a"], ["b"]]), "holds only the label column 'label'"),
        "label column first": ((["label", "pixel0", "pixel1"], [["3", "0", "255"]]),
                               "column 'label' looks like the labels: set data.options.label = 'label'"),
        "duplicate column": ((["a", "a", "label"], [["1", "2", "x"]]), "names column 'a' twice"),
        "unnamed index column": ((["", "a", "label"], [["0", "2", "x"]]), "column 1 of the header has no name"),
        "too large for float32": ((head, [["1e39", "2", "x"], ["1", "2", "y"]]), "1e39 is too large for float32"),
    }


@pytest.mark.parametrize("case", list(_bad_csv_cases()))
def test_bad_csv_is_a_one_line_error_naming_the_file(tmp_path, case):
    (header, rows), fragment = _bad_csv_cases()[case]
    path = write_rows(tmp_path / "bad.csv", header, rows)
    with pytest.raises(DataError) as exc:
        load("csv", root=str(path))
    message = str(exc.value)
    assert str(path) in message and fragment in message and "\n" not in message


def test_a_label_column_that_does_not_exist_lists_the_columns_and_the_nearest(tmp_path):
    write_iris(tmp_path / "iris.csv")
    for ask in (lambda o: load("csv", root=str(tmp_path / "iris.csv"), **o),
                lambda o: num_classes("csv", o, str(tmp_path / "iris.csv"))):
        with pytest.raises(DataError, match="no column 'specie': did you mean 'species'\\? the columns are "
                                            "sepal_length, sepal_width, petal_length, species"):
            ask({"label": "specie"})


@pytest.mark.parametrize("name, file, fragment", [
    ("npz", None, "data.root is empty: set it to the .npz archive"),
    ("npz", "nothing.npz", "nothing.npz: file not found: data.root must name an existing .npz"),
    ("csv", "nothing.csv", "nothing.csv: file not found"),
    ("npz", "table.csv", "table.csv: not a .npz file: data.name = 'npz' reads a .npz archive (np.savez): .csv files "
                         "are read by data.name = 'csv'"),
    ("csv", "arrays.npz", "arrays.npz: not a .csv or .tsv file"),
    ("npz", "arrays.npy", "save named arrays with np.savez"),
    ("csv", "folder.csv", "folder.csv: is a folder"),
    ("npz", "fake.npz", "fake.npz: not a valid .npz archive"),
    ("csv", "binary.csv", "binary.csv: not UTF-8 text"),
])
def test_a_wrong_path_or_kind_of_file_is_named(tmp_path, name, file, fragment):
    (tmp_path / "table.csv").write_text("a,label\n1,0\n2,1\n")
    np.savez(tmp_path / "arrays.npz", x=np.zeros((2, 1)), y=np.arange(2))
    np.save(tmp_path / "arrays.npy", np.zeros((2, 1)))
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "fake.npz").write_text("x,y\n1,2\n")
    (tmp_path / "binary.csv").write_bytes(b"a,b\n\xff\xfe\x00\x01\n")
    root = str(tmp_path / file) if file else None
    with pytest.raises(DataError) as exc:
        load(name, root=root)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("name, options, fragment", [
    ("npz", {"classes": 1}, "npz classes = 1 is not allowed: use an integer >= 2"),
    ("npz", {"classes": 3}, "label 3 is out of range: labels must be integers in 0..2"),
    ("npz", {"layout": "HWC"}, "npz layout = 'HWC' is not allowed: use one of auto, NHW, NCL, NCHW, NHWC"),
    ("npz", {"layout": "NHWC"}, "layout = 'NHWC' is for 4-D arrays"),
    ("npz", {"test_fraction": 1.0}, "test_fraction = 1.0 is not allowed: use a number in (0, 1)"),
    ("npz", {"test_fractoin": 0.1}, "unknown option 'test_fractoin' for dataset 'npz': did you mean "
                                    "'test_fraction'?"),
    ("csv", {"delimiter": ";;"}, "csv delimiter = ';;' is not allowed"),
    ("csv", {"classes": 2}, "classes = 2 but the labels hold 3 names ('setosa', 'versicolor', 'virginica')"),
])
def test_bad_options_are_named(tmp_path, name, options, fragment):
    write_iris(tmp_path / "iris.csv")
    x, y = separable(12)
    np.savez(tmp_path / "a.npz", x=x, y=y + 2)  # labels 2, 3
    root = str(tmp_path / ("a.npz" if name == "npz" else "iris.csv"))
    with pytest.raises(DataError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        load(name, root=root, **options)


def test_test_fraction_is_refused_when_the_file_has_a_test_split(tmp_path):
    x, y = separable(10)
    np.savez(tmp_path / "a.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    with pytest.raises(DataError, match="holds x_test and y_test, so no test split is drawn"):
        load("npz", root=str(tmp_path / "a.npz"), test_fraction=0.3)


def test_the_file_datasets_are_listed_and_a_misspelt_name_points_at_them(capsys):
    from trainwell.data.registry import spec_of

    assert main(["datasets"]) == 0
    listed = capsys.readouterr().out
    assert "npz" in listed and "csv" in listed and "your table" in listed
    with pytest.raises(DataError, match="did you mean 'csv'"):
        spec_of("cvs")


# --- trainwell fit on the user's files ---------------------------------------------------------------------------

QUIET = ["report.enabled=false", "doctor.preflight=false", "optim.name=adam", "optim.lr=0.01", "optim.schedule=none",
         "train.batch_size=16"]


def _fit(settings, out):
    args = ["fit", "--quiet", "--out", str(out)]
    for s in [*QUIET, *settings]:
        args += ["--set", s]
    assert main(args) == 0
    return json.loads((out / "summary.json").read_text())


def _numpy_forward(state: dict, x: np.ndarray) -> np.ndarray:
    """The saved network's scores, computed here with NumPy (Linear-ReLU-...-Linear; a 2-D convolution with
    padding 1 for each 4-D weight), independent of trainwell's model code."""
    weights = [(k, v.numpy().astype(np.float64)) for k, v in state.items() if k.endswith("weight")]
    h = x.astype(np.float64)
    for i, (name, w) in enumerate(weights):
        b = state[name[: -len("weight")] + "bias"].numpy().astype(np.float64)
        if w.ndim == 4:  # (out, in, 3, 3), stride 1, padding 1
            p = np.pad(h, ((0, 0), (0, 0), (1, 1), (1, 1)))
            windows = np.lib.stride_tricks.sliding_window_view(p, (3, 3), axis=(2, 3))  # (N, C, H, W, 3, 3)
            h = np.einsum("nchwij,ocij->nohw", windows, w) + b[None, :, None, None]
        else:
            h = h.reshape(len(h), -1) @ w.T + b
        if i < len(weights) - 1:
            h = np.maximum(h, 0.0)
    return h


def _trained_well(run, summary):
    losses = [json.loads(line)["train_loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < 0.5 * losses[0], losses  # the loss dropped on a separable problem
    assert summary["stop"]["restored_best_epoch"] is None  # the saved last.pt holds the weights evaluated
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]


def test_fit_on_an_iris_like_csv_with_an_mlp(workdir, capsys):
    write_iris(workdir / "iris.csv", n_per_class=30)
    summary = _fit(["data.name=csv", "data.root=iris.csv", "model.kind=mlp", "model.hidden=[16]",
                    "preprocess.kind=standardize", "train.epochs=15"], workdir / "run")
    assert "classes: 0 = setosa, 1 = versicolor, 2 = virginica" in capsys.readouterr().out
    assert summary["classes"] == 3 and summary["class_names"] == sorted(SPECIES)
    assert summary["sizes"] == {"train": 65, "val": 7, "test": 18}
    state = _trained_well(workdir / "run", summary)
    s = load("csv", root=str(workdir / "iris.csv"), seed=0, val_fraction=0.1)  # the run's split, data.seed = 0
    train = s.train[0].numpy().astype(np.float64)
    mean, std = train.mean(0), train.std(0)  # standardized with the training split's statistics
    predicted = _numpy_forward(state, (s.test[0].numpy() - mean) / std).argmax(1)
    assert summary["final"]["test_acc"] == pytest.approx(float((predicted == s.test[1].numpy()).mean()), abs=1e-9)
    assert summary["final"]["test_acc"] >= 0.9


def test_fit_on_npz_arrays_with_an_mlp_and_the_file_test_split(workdir):
    x, y = separable(300)
    x_test, y_test = separable(100, seed=1)
    np.savez(workdir / "toy.npz", x_train=x, y_train=y, x_test=x_test, y_test=y_test)
    summary = _fit(["data.name=npz", "data.root=toy.npz", "model.kind=mlp", "model.hidden=[16]", "train.epochs=10"],
                   workdir / "run")
    state = _trained_well(workdir / "run", summary)
    own = float((_numpy_forward(state, x_test).argmax(1) == y_test).mean())  # on the test arrays the user saved
    assert summary["final"]["test_acc"] == pytest.approx(own, abs=1e-9) and own >= 0.9
    assert summary["sizes"]["test"] == 100 and summary["class_names"] is None


def test_fit_on_npz_images_with_a_cnn(workdir):
    x, y = bar_images(240)
    np.savez(workdir / "bars.npz", x=x, y=y)
    blocks = "model.blocks=[{type='conv', channels=4, kernel=3, stride=1, padding=1}]"
    summary = _fit(["data.name=npz", "data.root=bars.npz", "model.kind=cnn", blocks, "model.dense=[]",
                    "train.epochs=12"], workdir / "run")
    state = _trained_well(workdir / "run", summary)
    assert [tuple(v.shape) for k, v in state.items() if k.endswith("weight")] == [(4, 1, 3, 3), (2, 256)]
    s = load("npz", root=str(workdir / "bars.npz"), seed=0, val_fraction=0.1)
    own = float((_numpy_forward(state, s.test[0].numpy()).argmax(1) == s.test[1].numpy()).mean())
    assert summary["final"]["test_acc"] == pytest.approx(own, abs=1e-9) and own >= 0.9
    assert summary["sizes"]["test"] == 48


def test_fit_with_a_bad_file_is_one_line_and_exit_2(workdir, capsys):
    write_rows(workdir / "t.csv", ["a", "label"], [["1", "x"], ["oops", "y"]])
    assert main(["fit", "--set", "data.name=csv", "--set", "data.root=t.csv", "--set", "model.kind=mlp"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{workdir / 't.csv'}: column 'a' is not numeric: line 3" in err


def test_a_row_id_is_left_out_only_when_asked(tmp_path):
    """A file sorted by class whose features are noise: its id column alone tells the classes apart (the row's
    place in the file), so it is refused; ``drop`` leaves it out, ``drop = []`` keeps it on purpose."""
    rng = np.random.default_rng(0)
    rows = [[str(i), f"{rng.normal():.3f}", str(int(i >= 30))] for i in range(60)]
    path = write_rows(tmp_path / "sorted.csv", ["id", "noise", "label"], rows)
    with pytest.raises(DataError, match="column 'id' looks like a row id"):
        load("csv", root=str(path))
    kept = load("csv", root=str(path), drop=["id"])
    assert kept.meta.input_shape == (1,)
    assert load("csv", root=str(path), drop=[]).meta.input_shape == (2,)
    with pytest.raises(DataError, match="drop names no column 'ID': did you mean 'id'"):
        load("csv", root=str(path), drop=["ID"])


def test_resuming_after_the_data_file_changed_is_refused(workdir, capsys):
    """--resume promises to continue exactly; on an edited file (rows dropped) its splits would be drawn anew from
    other rows. The unchanged file resumes; a changed or missing one is one line naming it."""
    rows = write_iris(workdir / "iris.csv", n_per_class=20)
    args = ["--set", "data.name=csv", "--set", "data.root=iris.csv", "--set", "model.kind=mlp", "--set",
            "model.hidden=[8]", "--set", "train.epochs=2", "--set", "optim.schedule=none", "--set",
            "report.enabled=false", "--set", "doctor.preflight=false", "--quiet"]
    assert main(["fit", *args, "--out", "run"]) == 0
    assert json.loads((workdir / "run" / "data.json").read_text())["size"] == (workdir / "iris.csv").stat().st_size
    assert main(["fit", "--resume", "run", "--set", "train.epochs=3", "--quiet"]) == 0
    write_rows(workdir / "iris.csv", ["sepal_length", "sepal_width", "petal_length", "species"], rows[:-10])
    capsys.readouterr()
    assert main(["fit", "--resume", "run", "--set", "train.epochs=4", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "iris.csv: the data file changed since this run started" in err and len(err.strip().splitlines()) == 1
    (workdir / "iris.csv").unlink()
    assert main(["fit", "--resume", "run", "--set", "train.epochs=4", "--quiet"]) == 2
    assert "iris.csv: the data file this run trained on is gone" in capsys.readouterr().err
    assert json.loads((workdir / "run" / "summary.json").read_text())["epochs"] == 3  # the run itself untouched


def test_labels_that_stand_out_are_noted_after_the_fit(workdir, capsys):
    """1-based labels (class 0 never seen), a class only in the file's test split and a test split of a few
    examples train as they are, each with a note under the result."""
    x, y = separable(60)
    y_test = np.array([1, 2, 3, 3, 2])
    np.savez(workdir / "d.npz", x_train=x, y_train=y + 1, x_test=x[:5], y_test=y_test)
    summary = _fit(["data.name=npz", "data.root=d.npz", "model.kind=mlp", "model.hidden=[8]", "train.epochs=2"],
                   workdir / "run")
    assert summary["classes"] == 4
    notes = summary["label_notes"]
    assert notes[0].startswith("class 0 appears in no split while 1..3 do: 1-based labels?")
    assert notes[1].startswith("class 3 appears only in the test split: the model never trains on it")
    assert notes[2] == "the test split holds 5 examples: its accuracy moves in steps of 20%"
    out = capsys.readouterr().out
    assert all(f"note: {n}" in " ".join(out.split()) for n in notes)
    x, y = separable(200)
    np.savez(workdir / "ok.npz", x=x, y=y)
    assert _fit(["data.name=npz", "data.root=ok.npz", "model.kind=mlp", "train.epochs=1"],
                workdir / "ok")["label_notes"] == []


@pytest.mark.slow  # seconds each
def test_the_report_shows_the_class_names_and_the_label_notes(workdir):
    write_iris(workdir / "iris.csv", n_per_class=8)
    _fit(["data.name=csv", "data.root=iris.csv", "model.kind=mlp", "model.hidden=[8]", "train.epochs=1",
          "report.enabled=true"], workdir / "run")
    page = (workdir / "run" / "report.html").read_text()
    assert "<th>classes</th><td>3: 0 = setosa, 1 = versicolor, 2 = virginica</td>" in page
    assert "<th>label note</th><td>the test split holds 5 examples: its accuracy moves in steps of 20%</td>" in page
