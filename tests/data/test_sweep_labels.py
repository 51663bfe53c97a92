"""A sweep over a user's table of named classes shows the names (and the label notes) as ``fit`` does: under its
table and in its summary.json, read from what its members wrote."""

import json

import pytest

from tests.data.test_user_files import write_iris
from trainwell.cli import main
from trainwell.sweep_labels import shared_labels

QUIET = ["report.enabled=false", "doctor.preflight=false", "model.kind=mlp", "model.hidden=[8]", "train.epochs=2"]


def _sweep(workdir, data):
    args = ["sweep", "--out", str(workdir / "sw"), "--grid", "optim.lr=0.001,0.01"]
    for s in [*QUIET, *data]:
        args += ["--set", s]
    assert main(args) == 0
    return json.loads((workdir / "sw" / "summary.json").read_text())


def test_a_sweep_of_named_classes_prints_and_keeps_the_names(workdir, capsys):
    write_iris(workdir / "iris.csv")
    summary = _sweep(workdir, ["data.name=csv", "data.root=iris.csv"])
    out = capsys.readouterr().out
    assert "classes: 0 = setosa, 1 = versicolor, 2 = virginica" in out
    member = json.loads((workdir / "sw" / "member-0" / "summary.json").read_text())
    assert summary["class_names"] == member["class_names"] == ["setosa", "versicolor", "virginica"]
    assert summary["label_notes"] == member["label_notes"] and summary["label_notes"]  # a 12-example test split
    assert f"note: {summary['label_notes'][0]}" in out


@pytest.mark.slow
def test_the_sweeps_report_shows_the_shared_class_names(workdir):
    write_iris(workdir / "iris.csv")
    _sweep(workdir, ["data.name=csv", "data.root=iris.csv", "report.enabled=true"])
    html = (workdir / "sw" / "report.html").read_text()
    assert "0 = setosa, 1 = versicolor, 2 = virginica" in html and "label note" in html


def test_a_sweep_of_class_ids_shows_no_names(workdir, capsys):
    summary = _sweep(workdir, ["data.name=spirals"])
    assert "classes:" not in capsys.readouterr().out
    assert summary["class_names"] is None and summary["label_notes"] == []


def test_members_that_disagree_share_no_names(tmp_path):
    for m, names in enumerate((["a", "b"], ["a", "c"])):
        (tmp_path / f"member-{m}").mkdir()
        (tmp_path / f"member-{m}" / "summary.json").write_text(json.dumps({"class_names": names}))
    assert shared_labels(tmp_path, 2) == {"class_names": None, "label_notes": []}
    (tmp_path / "member-1" / "summary.json").write_text(json.dumps({"class_names": ["a", "b"]}))
    assert shared_labels(tmp_path, 3) == {"class_names": ["a", "b"], "label_notes": []}  # member 2: no summary


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_resuming_a_sweep_after_its_data_file_changed_is_refused(workdir, capsys):
    """As fit --resume: each member continues on the file it started on, or the sweep says the file changed."""
    rows = write_iris(workdir / "iris.csv")
    _sweep(workdir, ["data.name=csv", "data.root=iris.csv"])
    assert main(["sweep", "--resume", str(workdir / "sw")]) == 0  # the same file: the finished members stand
    write_iris(workdir / "iris.csv", seed=1)  # other values, same size
    capsys.readouterr()
    assert main(["sweep", "--resume", str(workdir / "sw")]) == 2
    err = capsys.readouterr().err
    assert "iris.csv: the data file changed since this run started" in err and len(err.strip().splitlines()) == 1
    assert len(rows) == 60


def test_a_grid_over_one_data_option(workdir):
    """--grid data.options.test_fraction=... varies that option as --set sets it (the rest of the table kept)."""
    write_iris(workdir / "iris.csv")
    args = ["sweep", "--out", str(workdir / "sw"), "--grid", "data.options.test_fraction=0.2,0.5"]
    for s in [*QUIET, "data.name=csv", "data.root=iris.csv", "data.options.label=species"]:
        args += ["--set", s]
    assert main(args) == 0
    sizes = [json.loads((workdir / "sw" / f"member-{m}" / "summary.json").read_text())["sizes"]["test"]
             for m in range(2)]
    assert sizes == [12, 30]  # 20% and 50% of 60 rows
