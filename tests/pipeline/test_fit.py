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


def test_the_preflight_time_is_reported_in_the_summary_and_the_page(tmp_path):
    """A fit with the pre-flight on says how long it took (``preflight_s``, part of the wall time, shown on the
    page); with it off there is no such number."""
    from tests.helpers import tiny_config
    from trainwell.pipeline import fit

    on = fit(tiny_config("doctor.preflight=true", "report.enabled=true", quiet=False), out=tmp_path / "on").summary
    assert 0 < on["preflight_s"] < on["wall_s"]
    assert "pre-flight time" in (tmp_path / "on" / "report.html").read_text(encoding="utf-8")
    off = fit(tiny_config(), out=tmp_path / "off").summary
    assert "preflight_s" not in off
