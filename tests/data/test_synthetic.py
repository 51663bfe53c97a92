"""The synthetic datasets (data/synthetic.py): declared shapes and classes, labels that follow their definitions."""

import pytest
import torch

from trainwell.data import load


@pytest.mark.parametrize(
    "name, options, shape, classes",
    [
        ("spirals", {"arms": 5, "n_per_class": 40}, (2,), 5),
        ("xor", {}, (2,), 2),
        ("parity", {"bits": 5}, (5,), 2),
        ("encoder8", {}, (8,), 8),
        ("modular", {"p": 7}, (14,), 7),
        ("tc", {"n": 50, "grid": 6}, (1, 6, 6), 2),
    ],
)
def test_synthetic_datasets_have_declared_shapes_and_classes(name, options, shape, classes):
    s = load(name, **options)
    assert s.meta.input_shape == shape and s.meta.num_classes == classes
    labels = torch.cat([s.train[1], s.test[1]])
    assert int(labels.min()) >= 0 and int(labels.max()) < classes


def test_synthetic_labels_follow_their_definitions():
    x, y = load("xor").train
    assert torch.equal(y, (x[:, 0] != x[:, 1]).long())
    x, y = load("parity", bits=6).train
    assert len(x) == 64 and torch.equal(y, x.sum(1).long() % 2)
    x, y = load("encoder8").train
    assert torch.equal(x.argmax(1), y)
    s = load("modular", p=11, train_fraction=0.5, encoding="tokens", val_fraction=0.0)
    x, y = s.train
    assert torch.equal(y, (x[:, 0] + x[:, 1]) % 11)
    assert len(s.train[0]) + len(s.test[0]) == 121
    x, y = load("tc", n=200).train
    assert torch.all(x.sum(dim=(1, 2, 3)) == 5)  # both shapes have five pixels, whatever the rotation


def test_enumerative_datasets_validate_on_the_full_pattern_set():
    s = load("parity", bits=3)
    assert torch.equal(s.val[0], s.train[0]) and torch.equal(s.test[0], s.train[0])
