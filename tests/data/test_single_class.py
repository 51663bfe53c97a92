"""A file whose labels hold one class, whatever its id or name and however many classes are declared, is refused:
a classifier trained on it reaches 100% by predicting that class (a competition's test.csv without labels, the
wrong column taken for the label)."""

import numpy as np
import pytest

from tests.data.test_user_files import write_rows
from trainwell.data import load
from trainwell.errors import DataError


@pytest.mark.parametrize("label, options", [("1", {}), ("0", {"classes": 10}), ("7", {"classes": 10}),
                                            ("cat", {}), ("cat", {"classes": 3})])
def test_one_class_is_refused(tmp_path, label, options):
    path = write_rows(tmp_path / "t.csv", ["a", "b", "label"], [[str(i), str(i % 3), label] for i in range(30)])
    with pytest.raises(DataError, match="every label is .*: a classifier needs examples of at least 2 classes"):
        load("csv", root=str(path), **options)


def test_two_classes_only_in_different_splits_are_read_together(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 3))
    np.savez(tmp_path / "s.npz", x_train=x, y_train=np.zeros(20, int), x_test=x, y_test=np.ones(20, int))
    s = load("npz", root=str(tmp_path / "s.npz"), val_fraction=0.0)  # one class per split: both across the file
    assert s.meta.num_classes == 2


def test_npz_splits_with_names_beside_ids_are_refused(tmp_path):
    x = np.random.default_rng(0).normal(size=(6, 3))
    np.savez(tmp_path / "m.npz", x_train=x, y_train=np.array([0, 1] * 3), x_test=x, y_test=np.array(["a", "b"] * 3))
    with pytest.raises(DataError, match="y_test holds names but y_train numbers"):
        load("npz", root=str(tmp_path / "m.npz"))


def test_a_named_class_only_in_the_test_split_is_noted_by_its_name(tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 3))
    np.savez(tmp_path / "b.npz", x_train=x, y_train=np.array(["cat", "dog"] * 15), x_test=x[:6],
             y_test=np.array(["cat", "dog", "bird"] * 2))
    notes = load("npz", root=str(tmp_path / "b.npz"), val_fraction=0.0).meta.notes["label_notes"]
    assert any(n.startswith("class 0 (bird) appears only in the test split") for n in notes), notes
