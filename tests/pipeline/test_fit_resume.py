"""Resume equals the uninterrupted run in every case, and refuses what would make it a different run."""

import json
import re
import typing

import pytest
import torch

from tests.helpers import tiny
from trainwell.cli import main
from trainwell.config import load_config
from trainwell.pipeline import config_of_run, fit
from trainwell.rundir import load_checkpoint, read_jsonl
from trainwell.train import Callback

SMALL = [*tiny(n_per_class=60, hidden=(16,), epochs=6, name=None), "train.batch_size=32", "optim.lr=0.01",
         "train.checkpoint_every=1"]


def _args(items):
    return [a for item in items for a in ("--set", item)]


def strip_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


class _CrashAt(Callback):
    """Raise after the checkpoint callback saved ``epoch`` (a crash between epochs)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, state):
        if state.epoch == self.epoch:
            raise KeyboardInterrupt


def _same_run(a, b):
    assert strip_time(read_jsonl(a / "metrics.jsonl")) == strip_time(read_jsonl(b / "metrics.jsonl"))
    ma = load_checkpoint(a / "checkpoints" / "last.pt")["model"]
    mb = load_checkpoint(b / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    sa, sb = (json.loads((p / "summary.json").read_text()) for p in (a, b))
    for key in ("epochs", "steps", "stop_reason", "best_epoch", "final", "failed"):
        assert sa[key] == sb[key], key


@pytest.mark.parametrize("crash_epoch", [4, 5])
@pytest.mark.slow  # 0.24 s each on a 2-core CPU (RESULTS §51)
def test_fixed_criterion_lr_drop_survives_a_crash(workdir, crash_epoch):
    items = SMALL + ["train.epochs=20", "optim.schedule=step", "optim.step_size=2", "optim.gamma=0.7",
                     "stop.criteria=['fixed']", "stop.fixed_epochs=4", "stop.fixed_more=3"]
    cfg = load_config(None, items)
    fit(cfg, out="ref", quiet=True)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, out="victim", quiet=True, callbacks=[_CrashAt(crash_epoch)])
    fit(config_of_run("victim"), resume="victim", quiet=True)
    _same_run(workdir / "ref", workdir / "victim")
    lrs = [r["lr"] for r in read_jsonl(workdir / "ref" / "metrics.jsonl")]
    # epoch 4's rate (the step schedule's 0.7 at the epoch boundary) x 0.1, then frozen: the schedule stays off
    assert lrs[4:] == pytest.approx([lrs[3] * 0.7 * 0.1] * len(lrs[4:]))


@pytest.mark.parametrize("criterion", [["stop.criteria=['early_stopping']", "stop.patience=1",
                                        "stop.min_delta=10"],
                                       ["stop.criteria=['loss_change']", "stop.loss_window=2",
                                        "stop.loss_threshold=10"]])
@pytest.mark.slow  # 0.20 s each on a 2-core CPU (RESULTS §51)
def test_a_finished_stopped_run_resumed_trains_no_further(workdir, criterion):
    cfg = load_config(None, SMALL + ["train.epochs=30"] + criterion)
    ref = fit(cfg, out="ref", quiet=True)
    assert ref.summary["epochs"] < 30  # the criterion fired
    fit(cfg, out="again", quiet=True)
    (workdir / "again" / "summary.json").unlink()  # as if killed while writing the report
    fit(config_of_run("again"), resume="again", quiet=True)
    _same_run(workdir / "ref", workdir / "again")
    fit(config_of_run("ref"), resume="ref", quiet=True)  # a finished run resumed: unchanged
    _same_run(workdir / "again", workdir / "ref")


def test_extending_a_run_a_stopping_criterion_ended_is_refused_and_its_config_kept(workdir, capsys):
    cfg = load_config(None, SMALL + ["train.epochs=30", "optim.schedule=none", "stop.criteria=['early_stopping']",
                                     "stop.patience=1", "stop.min_delta=10"])
    assert fit(cfg, out="r", quiet=True).summary["epochs"] < 30
    before = (workdir / "r" / "config.toml").read_text()
    assert main(["fit", "--resume", "r", "--set", "train.epochs=80", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot extend this run: it was stopped (early stopping: no improvement for 1 epoch " in err
    assert "start a new run" in err and len(err.splitlines()) == 1
    assert (workdir / "r" / "config.toml").read_text() == before


def test_extending_a_run_without_a_planned_schedule_equals_the_longer_run(workdir):
    cfg = load_config(None, SMALL + ["optim.schedule=none"])
    fit(cfg, out="short", quiet=True)
    assert main(["fit", "--resume", "short", "--set", "train.epochs=9", "--quiet"]) == 0
    fit(load_config(None, SMALL + ["optim.schedule=none", "train.epochs=9"]), out="long", quiet=True)
    assert strip_time(read_jsonl(workdir / "short" / "metrics.jsonl")) == strip_time(
        read_jsonl(workdir / "long" / "metrics.jsonl"))


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_extending_a_planned_schedule_is_refused_with_the_reason(workdir, capsys, schedule):
    fit(load_config(None, SMALL + [f"optim.schedule={schedule}"]), out="r", quiet=True)
    assert main(["fit", "--resume", "r", "--set", "train.epochs=9", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "start a new run" in err and schedule in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("item", ["model.activation=tanh", "optim.name=sgd", "optim.lr=0.5", "data.seed=3"])
def test_resume_refuses_keys_that_make_another_run(workdir, capsys, item):
    fit(load_config(None, SMALL), out="r", quiet=True)
    config = (workdir / "r" / "config.toml").read_text()
    summary = (workdir / "r" / "summary.json").read_text()
    assert main(["fit", "--resume", "r", "--set", item, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"--set {item.split('=')[0]} is not allowed with --resume" in err and len(err.splitlines()) == 1
    assert (workdir / "r" / "config.toml").read_text() == config
    assert (workdir / "r" / "summary.json").read_text() == summary


def test_resume_with_out_is_an_error(workdir, capsys):
    fit(load_config(None, SMALL), out="r", quiet=True)
    assert main(["fit", "--resume", "r", "--out", "elsewhere", "--quiet"]) == 2
    assert "drop --out" in capsys.readouterr().err and not (workdir / "elsewhere").exists()


def test_deleted_metrics_are_rebuilt_from_the_checkpoint(workdir):
    cfg = load_config(None, SMALL)
    fit(cfg, out="ref", quiet=True)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, out="victim", quiet=True, callbacks=[_CrashAt(3)])
    (workdir / "victim" / "metrics.jsonl").unlink()
    fit(config_of_run("victim"), resume="victim", quiet=True)
    _same_run(workdir / "ref", workdir / "victim")


BAD_CHECKPOINTS = [
    (torch.zeros(3), "not a trainwell checkpoint (a dict of states), got a Tensor"),
    ([1, 2, 3], "got a list"),
    ("wrong types", "field 'epoch' should be a int, got str"),
    ("no model", "field 'model' should be a dict, got nothing"),
    ("history", "field 'history' should be a list, got dict"),
]


@pytest.mark.parametrize("content, fragment", BAD_CHECKPOINTS)
def test_malformed_last_checkpoint_is_one_line(workdir, capsys, content, fragment):
    fit(load_config(None, SMALL), out="r", quiet=True)
    path = workdir / "r" / "checkpoints" / "last.pt"
    ckpt = load_checkpoint(path)
    if content == "wrong types":
        content = {**ckpt, "epoch": "three"}
    elif content == "no model":
        content = {k: v for k, v in ckpt.items() if k != "model"}
    elif content == "history":
        content = {**ckpt, "history": {"epoch": 1}}
    torch.save(content, path)
    assert main(["fit", "--resume", "r", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1, err


def test_fixed_criterion_with_a_per_step_schedule_is_a_config_error():
    from trainwell.errors import ConfigError

    for schedule in ("onecycle", "cosine"):
        with pytest.raises(ConfigError, match="would be undone by the schedule"):
            load_config(None, ["stop.criteria=['fixed']", f"optim.schedule={schedule}"])


@pytest.mark.parametrize("schedule", ["none", "onecycle"])
def test_resuming_for_fewer_epochs_than_trained_is_refused_before_anything_is_written(workdir, capsys, schedule):
    fit(load_config(None, SMALL + [f"optim.schedule={schedule}"]), out="r", quiet=True)
    before = {p.name: p.read_bytes() for p in (workdir / "r").iterdir() if p.is_file()}
    assert main(["fit", "--resume", "r", "--set", "train.epochs=2", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "train.epochs = 2 is not allowed: the run has already trained 6 epochs" in err
    assert len(err.splitlines()) == 1
    assert {p.name: p.read_bytes() for p in (workdir / "r").iterdir() if p.is_file()} == before
    # the library path (a config not read by config_of_run) refuses it too, before config.toml is rewritten
    from trainwell.errors import ConfigError

    with pytest.raises(ConfigError, match="already trained 6 epochs"):
        fit(load_config(None, SMALL + [f"optim.schedule={schedule}", "train.epochs=2"]), resume="r", quiet=True)
    assert {p.name: p.read_bytes() for p in (workdir / "r").iterdir() if p.is_file()} == before


def test_a_mistyped_key_with_resume_is_named_as_unknown_with_the_nearest_key(workdir, capsys):
    fit(load_config(None, SMALL), out="r", quiet=True)
    assert main(["fit", "--resume", "r", "--set", "train.epoch=9", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown config key 'train.epoch': did you mean 'train.epochs'? allowed keys in train are" in err
    assert len(err.splitlines()) == 1


@pytest.mark.slow  # 0.41 s each on a 2-core CPU (RESULTS §51)
def test_the_readme_names_the_schedules_under_which_a_finished_run_extends(workdir, capsys):
    """The README's sentence on extending a run with train.epochs is held to what resume does: each schedule it
    names extends a finished run by the epochs asked for, and every other schedule is refused with its reason."""
    from pathlib import Path

    from trainwell.config import OptimConfig

    readme = " ".join(Path(__file__).parents[2].joinpath("README.md").read_text(encoding="utf-8").split())
    sentence = readme[readme.index("`--set train.epochs=N` extends"):].split(";")[0]
    assert "optim.schedule" in sentence, sentence  # the sentence says which schedules allow it
    named = set(re.findall(r"`(\w+)`", sentence.split("optim.schedule")[1]))
    every = set(typing.get_args(typing.get_type_hints(OptimConfig)["schedule"]))
    assert named and named < every
    for schedule in sorted(every):
        fit(load_config(None, SMALL + ["train.epochs=2", f"optim.schedule={schedule}"]), out=schedule, quiet=True)
        code = main(["fit", "--resume", schedule, "--set", "train.epochs=3", "--quiet"])
        err = capsys.readouterr().err
        if schedule in named:
            assert code == 0 and len(read_jsonl(workdir / schedule / "metrics.jsonl")) == 3, err
        else:
            assert code == 2 and schedule in err and "start a new run" in err
