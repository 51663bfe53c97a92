"""The learning-rate range test (Smith 2017): the sweep, its reading, `trainwell lr-find` and optim.lr = "find"."""

import math

import pytest
import torch

from tests.helpers import boring_net
from trainwell.cli import main
from trainwell.config import load_config
from trainwell.errors import ConfigError
from trainwell.pipeline import fit
from trainwell.train.lr_range import lr_range_test, read_curve

SPIRALS = ["data.name=spirals", "data.options={arms = 3, n_per_class = 60}", "model.kind=mlp",
           "model.hidden=[32,32]", "optim.name=sgd", "optim.schedule=none", "train.epochs=2", "train.batch_size=32"]


def test_the_sweep_is_exponential_stops_on_explosion_and_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    x = torch.randn(512, 4)
    y = (x[:, 0] > 0).long()
    model = boring_net(4, 16, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.123, momentum=0.9)
    result = lr_range_test(model, opt, x, y, start=1e-5, end=1e3, steps=80, batch_size=32)
    ratios = [b / a for a, b in zip(result.lrs, result.lrs[1:], strict=False)]
    assert result.lrs[0] == pytest.approx(1e-5) and max(ratios) == pytest.approx(min(ratios))  # geometric
    assert "exploded" in result.stopped or "became" in result.stopped  # 1e3 on this problem blows up
    assert len(result.lrs) < 80
    assert result.suggestion == pytest.approx(result.min_lr / 10) and 1e-4 < result.suggestion < 10
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert opt.param_groups[0]["lr"] == 0.123 and not opt.state  # the optimizer is restored too


def test_the_reading_of_a_scripted_curve():
    lrs = [10 ** (-5 + i * 0.1) for i in range(50)]  # 1e-5 .. ~8
    smoothed = [2.0 - 1.5 / (1 + math.exp(-(i - 25) / 3)) if i < 40 else 1.0 + (i - 40) for i in range(50)]
    r = read_curve(lrs, smoothed, smoothed, "test")
    assert r.min_lr == pytest.approx(lrs[39]) and r.suggestion == pytest.approx(lrs[39] / 10)
    assert r.steepest == pytest.approx(lrs[25])  # the logistic falls fastest at its middle
    with pytest.raises(ValueError, match="lower its start rate"):
        read_curve(lrs[:3], [1, 2, 3], [1, 2, 3], "the loss became nan")


def test_lr_find_command_prints_a_suggestion_and_writes_the_plot(workdir, capsys):
    sets = [a for s in SPIRALS for a in ("--set", s)]
    assert main(["lr-find", *sets, "--steps", "60", "--out", "lr.png"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("suggested learning rate: ") and "--set optim.lr=" in out and "doctor, a 60-step" in out
    assert (workdir / "lr.png").stat().st_size > 0
    assert main(["lr-find", "--start", "1", "--end", "0.1"]) == 2


def test_optim_lr_find_picks_the_rate_before_training(workdir):
    cfg = load_config(None, [*SPIRALS, 'optim.lr="find"'])
    assert cfg.optim.lr == "find"
    result = fit(cfg, out="run", quiet=True)
    found = result.summary["lr_find"]["suggestion"]
    assert 1e-6 < found < 10 and result.summary["lr_find"]["check"]["check"] == "learning rate (loss curve)"
    assert f"lr = {found}" in (result.run_dir / "config.toml").read_text()  # the run records the number
    with pytest.raises(ConfigError, match="a number or one of 'find'"):
        load_config(None, ['optim.lr="fast"'])
