from pathlib import Path

import pytest
import torch

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


@pytest.mark.slow  # seconds each
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


def test_compile_mode_is_checked_and_auto_captures_only_on_cuda():
    from trainwell.errors import ConfigError
    from trainwell.pipeline.fit import compile_mode

    assert compile_mode("auto", "cuda:0") == "reduce-overhead" and compile_mode("auto", "cpu") == "default"
    assert compile_mode("reduce-overhead", "cpu") == "reduce-overhead"
    with pytest.raises(ConfigError, match=r"train.compile_mode = 'fast' is not allowed: use one of 'auto'"):
        load_config(None, ["train.compile_mode=fast"])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["auto", "reduce-overhead"])
def test_a_compiled_fit_trains_as_the_eager_one(tmp_path, mode):
    """``train.compile`` with each mode a CPU can run (reduce-overhead's CUDA graphs are skipped off CUDA): the
    same losses, epoch by epoch, as the eager fit (inductor may reorder float sums: to 1e-4), and the same
    state_dict keys."""
    from tests.helpers import tiny_config
    from trainwell.rundir import read_jsonl

    eager = fit(tiny_config(), out=tmp_path / "eager")
    compiled = fit(tiny_config("train.compile=true", f"train.compile_mode={mode}"), out=tmp_path / "compiled")
    a, b = (read_jsonl(r.run_dir / "metrics.jsonl") for r in (eager, compiled))
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert x["train_loss"] == pytest.approx(y["train_loss"], abs=1e-4)
        assert x["val_loss"] == pytest.approx(y["val_loss"], abs=1e-4)
    assert eager.model.state_dict().keys() == compiled.model.state_dict().keys()
    assert getattr(compiled.model, "_compiled_call_impl", None) is not None  # it really was compiled


def test_without_per_epoch_validation_the_same_model_trains_and_val_is_evaluated_once(tmp_path):
    """``train.val_each_epoch = false``: the validation rows stay held out (the same training rows, the same losses
    epoch by epoch, the same weights), no epoch evaluates them, the summary's final metrics still do; criteria
    that read validation every epoch are refused before anything runs."""
    from tests.helpers import tiny_config
    from trainwell.errors import ConfigError
    from trainwell.rundir import read_jsonl

    on = fit(tiny_config(), out=tmp_path / "on")
    off = fit(tiny_config("train.val_each_epoch=false"), out=tmp_path / "off")
    a, b = (read_jsonl(r.run_dir / "metrics.jsonl") for r in (on, off))
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]
    assert all("val_loss" in r for r in a) and not any("val_loss" in r for r in b)
    assert off.summary["final"]["val_acc"] == on.summary["final"]["val_acc"] is not None
    for k, v in on.model.state_dict().items():
        assert torch.equal(v, off.model.state_dict()[k]), k
    for criterion in ("early_stopping", "generalization_loss"):
        with pytest.raises(ConfigError, match=rf"stop.criteria '{criterion}' is not allowed with train.val_each_epoch"):
            tiny_config("train.val_each_epoch=false", f"stop.criteria=['{criterion}']")
    tiny_config("train.val_each_epoch=false", "stop.criteria=['early_stopping']", "stop.monitor=train_loss")  # allowed
