"""The fixtures the doctor's tests share."""

import pytest

from trainwell.data import load


@pytest.fixture(scope="module")
def spirals():
    s = load("spirals", n_per_class=100)
    return s.train
