from pathlib import Path

import pytest

from trainwell.config import Config, load_config
from trainwell.pipeline import fit


def test_example_config_is_the_default_recipe():
    example = load_config(Path(__file__).parents[2] / "configs" / "mnist1d-cnn.toml")
    default = Config()
    example.name = default.name
    assert example == default


@pytest.mark.slow
def test_default_fit_reaches_92_percent_on_mnist1d(workdir):
    result = fit(Config(), out="default", quiet=True)
    assert result.summary["final"]["test_acc"] >= 0.92
    assert result.summary["dataset"] == "mnist1d" and result.summary["model"] == "cnn"
