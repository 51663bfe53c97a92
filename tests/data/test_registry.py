"""The dataset registry (data/registry.py): every dataset listed, and bad requests as clear errors."""

import pytest

from trainwell.data import available, load
from trainwell.errors import DataError


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"name": "imagenet"}, "unknown dataset 'imagenet'"),
        ({"name": "spirals", "armz": 3}, "unknown option 'armz' for dataset 'spirals'"),
        ({"name": "spirals", "arms": 1}, "spirals arms = 1"),
        ({"name": "modular", "train_fraction": 1.5}, "train_fraction"),
        ({"name": "mnist"}, "data.root is empty"),
        ({"name": "cifar10", "root": "/nonexistent/folder"}, "not a folder"),
        ({"name": "digits", "val_fraction": 1.0}, "val_fraction"),
    ],
)
def test_bad_dataset_requests_are_clear_errors(kwargs, fragment):
    kwargs = dict(kwargs)
    name = kwargs.pop("name")
    with pytest.raises(DataError, match=fragment.replace("(", r"\(")):
        load(name, **kwargs)


def test_available_lists_every_dataset():
    names = available()
    for name in ("mnist1d", "digits", "spirals", "xor", "parity", "encoder8", "modular", "tc", "mnist",
                 "fashion-mnist", "cifar10"):
        assert name in names
