import json
import subprocess
import sys

import pytest
import torch

from tests.helpers import cli, tiny
from trainwell.cli import main

TINY = cli(tiny(epochs=3, quiet=False))

SUMMARY_KEYS = {"name", "config_hash", "dataset", "model", "params", "epochs", "steps", "stop_reason", "best_epoch",
                "final", "doctor", "wall_s", "trainwell_version", "torch_version", "seed"}


@pytest.mark.slow  # over 2 s: a subprocess or a whole fit
def test_fit_writes_a_complete_run_directory_and_prints_a_table(workdir, capsys):
    assert main(["fit", *TINY, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "test" in out and "accuracy" in out and "run dir" in out
    (run,) = (workdir / "runs").iterdir()
    assert run.name.startswith("tiny-")
    for rel in ("config.toml", "metrics.jsonl", "summary.json", "checkpoints/last.pt", "checkpoints/best.pt",
                "figures/learning_curves.png", "report.html"):
        assert (run / rel).is_file(), rel
    summary = json.loads((run / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert set(summary["final"]) == {"train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"}
    assert summary["epochs"] == 3 and summary["config_hash"] in run.name
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1, 2]
    torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    html = (run / "report.html").read_text()
    assert "data:image/png;base64" in html and "Final metrics" in html
    # a second identical run never overwrites the first
    assert main(["fit", *TINY, "--quiet"]) == 0
    assert len(list((workdir / "runs").iterdir())) == 2


@pytest.mark.slow  # seconds each
def test_json_flag_prints_the_summary_to_stdout(workdir, capsys):
    assert main(["fit", *TINY, "--quiet", "--json", "--out", "r"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary == json.loads((workdir / "r" / "summary.json").read_text())
    assert "accuracy" in captured.err


def test_out_that_exists_needs_force(workdir, capsys):
    (workdir / "r").mkdir()
    (workdir / "r" / "keep.txt").write_text("precious")
    assert main(["fit", *TINY, "--quiet", "--out", "r"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (workdir / "r" / "keep.txt").read_text() == "precious"
    assert main(["fit", *TINY, "--quiet", "--out", "r", "--force"]) == 2  # not a trainwell run: never replaced
    assert "not a trainwell run directory" in capsys.readouterr().err
    assert (workdir / "r" / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["fit", "--set", "optim.lr=-1"], "optim.lr = -1.0 is not allowed"),
        (["fit", "--set", "nope=1"], "unknown config key 'nope'"),
        (["fit", "missing.toml"], "does not exist"),
        (["fit", "--set", "data.name=imagenet"], "unknown dataset 'imagenet'"),
        (["fit", "--set", "model.blocks=[{type='conv', channels=4, kernel=5, stride=2}]", "--set",
          "model.geometry=strict"], "is not an integer"),
        (["fit", "--resume", "no-such-run"], "--resume needs a trainwell run directory"),
        (["report", "no-such-run"], "no-such-run: does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(workdir, capsys, args, fragment):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_report_rebuilds_the_page(workdir, capsys):
    main(["fit", *TINY, "--quiet", "--out", "r"])
    (workdir / "r" / "report.html").unlink()
    assert main(["report", "r"]) == 0
    assert (workdir / "r" / "report.html").exists()


@pytest.mark.slow  # over 2 s: a subprocess or a whole fit
def test_resume_with_more_epochs_extends_a_finished_run(workdir):
    main(["fit", *TINY, "--quiet", "--out", "r", "--set", "optim.schedule=none"])
    assert main(["fit", "--resume", "r", "--set", "train.epochs=5", "--quiet"]) == 0
    assert json.loads((workdir / "r" / "summary.json").read_text())["epochs"] == 5


@pytest.mark.slow  # over 2 s: a subprocess or a whole fit
def test_resuming_a_finished_run_says_nothing_was_left_to_train(workdir, capsys):
    main(["fit", *TINY, "--quiet", "--out", "r"])
    capsys.readouterr()
    assert main(["fit", "--resume", "r"]) == 0
    err = capsys.readouterr().err
    assert "r had already finished (completed 3 epochs): no epoch was left to train" in err
    assert "start a new run to train longer (its onecycle schedule was planned over its epochs)" in err
    main(["fit", *TINY, "--quiet", "--out", "flat", "--set", "optim.schedule=none"])
    assert main(["fit", "--resume", "flat"]) == 0
    assert "--set train.epochs=N with N > 3 trains on" in capsys.readouterr().err
    assert main(["fit", "--resume", "flat", "--set", "train.epochs=4"]) == 0
    assert "already finished" not in capsys.readouterr().err


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_python_dash_m_and_usage_errors(workdir):
    run = subprocess.run([sys.executable, "-m", "trainwell", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "fit" in run.stdout
    run = subprocess.run([sys.executable, "-m", "trainwell", "fit", "--bogus"], capture_output=True, text=True)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
    run = subprocess.run([sys.executable, "-m", "trainwell", "datasets"], capture_output=True, text=True)
    assert run.returncode == 0 and "mnist1d" in run.stdout


@pytest.mark.parametrize("name", ["mnist1d-cnn", "mnist1d-mlp", "digits-cnn", "spirals-mlp"])
def test_example_configs_are_valid_and_build(name):
    from pathlib import Path

    from trainwell.config import load_config
    from trainwell.pipeline import prepare

    path = Path(__file__).parents[2] / "configs" / f"{name}.toml"
    prep = prepare(load_config(path, ["train.epochs=1"]))
    x = prep.splits.train[0][:2]
    assert prep.model(x).shape == (2, prep.splits.meta.num_classes)


@pytest.mark.slow  # over 2 s: a subprocess or a whole fit
def test_strict_fit_exits_1_on_a_doctor_failure(workdir, capsys):
    zeros = [*TINY, "--set", "init.scheme=zeros", "--quiet"]  # the symmetry check fails
    assert main(["fit", *zeros, "--out", "a"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("doctor: ") and "failure" in out.strip().splitlines()[-1]
    assert main(["fit", *zeros, "--out", "b", "--strict"]) == 1
    assert main(["fit", *TINY, "--quiet", "--out", "c"]) == 0
    summary = json.loads((workdir / "c" / "summary.json").read_text())
    assert (main(["fit", *TINY, "--quiet", "--out", "d", "--strict"]) == 1) == any(
        v["status"] == "fail" for v in summary["doctor"])


def test_the_program_exits_with_mains_code_after_freezing_the_collector(monkeypatch):
    import gc
    from importlib.metadata import entry_points

    from trainwell import cli

    calls = []
    monkeypatch.setattr(cli, "main", lambda: calls.append("main") or 2)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))  # this test process keeps collecting
    with pytest.raises(SystemExit) as exit_:
        cli.run()
    assert exit_.value.code == 2 and calls == ["main", "freeze"]
    # the installed `trainwell` command and `python -m trainwell` both go through run()
    assert {e.value for e in entry_points(group="console_scripts", name="trainwell")} == {"trainwell.cli:run"}


IMPORT_PIPELINE = """
import gc, sys
from trainwell import cli
collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info["generation"]))
gc.disable() if sys.argv[1] == "off" else None
before = gc.get_freeze_count()
cli._import_pipeline()
print("torch" in sys.modules, collections, gc.isenabled(), gc.get_freeze_count() - before > 100_000)
"""


@pytest.mark.slow
@pytest.mark.parametrize("collector", ["on", "off"])
def test_the_commands_import_the_pipeline_without_collecting_and_freeze_it(collector):
    """torch's import is not scanned by the collector (none runs while it is imported), the objects it made are
    frozen, and the collector is left as it was found."""
    out = subprocess.run([sys.executable, "-c", IMPORT_PIPELINE, collector], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True", "[]", str(collector == "on"), "True"]


def test_fit_without_a_validation_split_names_the_metric_the_best_epoch_was_chosen_by(workdir, capsys):
    no_val = cli(tiny(epochs=3, quiet=True)) + ["--set", "data.val_fraction=0"]
    for monitor, used in (("val_loss", "train_loss"), ("val_acc", "train_acc")):
        assert main(["fit", *no_val, "--set", f"train.monitor={monitor}", "--out", monitor]) == 0
        out = capsys.readouterr().out
        summary = json.loads((workdir / monitor / "summary.json").read_text())
        history = [json.loads(line) for line in (workdir / monitor / "metrics.jsonl").read_text().splitlines()]
        pick = max if used.endswith("acc") else min
        assert summary["monitor"] == used and f"(best epoch by {used}: {summary['best_epoch'] + 1})" in out
        assert summary["best_epoch"] == pick(history, key=lambda r: r[used])["epoch"]
    assert main(["fit", *cli(tiny(epochs=1)), "--out", "with-val"]) == 0  # with validation: the configured one
    assert json.loads((workdir / "with-val" / "summary.json").read_text())["monitor"] == "val_loss"


@pytest.mark.parametrize("stop, change", [
    (["stop.criteria=[\"early_stopping\"]"], "--set stop.monitor=train_loss"),
    (["stop.criteria=[\"generalization_loss\"]"], "leave 'generalization_loss' out of stop.criteria"),
    (["stop.criteria=[\"loss_change\"]", "stop.loss_monitor=val_loss"], "--set stop.loss_monitor=train_loss"),
])
def test_a_criterion_reading_validation_without_a_validation_split_is_refused_before_anything_is_written(
        workdir, capsys, stop, change):
    args = [*cli(tiny(epochs=3)), "--set", "data.val_fraction=0", *cli(stop)]
    for cmd in (["fit", *args, "--out", "nv"], ["sweep", *args, "--seeds", "2", "--out", "sw"]):
        capsys.readouterr()
        assert main(cmd) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "no validation split (data.val_fraction = 0)" in err
        assert "--set data.val_fraction=0.1" in err and change in err and "EarlyStopping(" not in err
    assert not (workdir / "nv").exists() and not (workdir / "sw").exists() and not (workdir / "runs").exists()
    assert main(["fit", *args, "--set", "data.val_fraction=0.2", "--out", "ok"]) == 0  # a split: it trains


def test_fit_lines_agree_with_what_follows_them(workdir, capsys):
    """'completed 1 epoch'; the pre-flight's count of checks "not passed" is the count of the table at the end
    (skipped checks are counted apart: that table lists warnings and failures)."""
    settings = tiny(hidden=(32,), epochs=1, quiet=False)
    assert main(["fit", *cli(settings), "--set", "model.activation=tanh", "--set", "report.enabled=false",
                 "--out", "one"]) == 0
    captured = capsys.readouterr()
    summary = json.loads((workdir / "one" / "summary.json").read_text())
    assert summary["stop_reason"] == "completed 1 epoch" and "stopped: completed 1 epoch (" in captured.out
    pre = [v["status"] for v in summary["doctor"] if v["phase"] == "pre"]
    assert "skip" in pre and not {"warn", "fail"} & set(pre)  # the case where the count and the table disagreed
    (line,) = [ln for ln in captured.err.splitlines() if ln.startswith("pre-flight: ")]
    assert f"none warned or failed, {pre.count('skip')} skipped; training 1 epoch" in line
    assert "see the table at the end" not in line and "not passed" not in line


def test_sweep_progress_names_the_member_or_the_population_mean(workdir, capsys):
    settings = cli(tiny(epochs=2))
    assert main(["sweep", *settings, "--set", "model.norm=batch", "--seeds", "2", "--out", "seq"]) == 0
    err = capsys.readouterr().err
    assert "trained one after another" in err
    assert "[1/2] member 1/2 (member-0): epoch 1" in err and "[2/2] member 2/2 (member-1): epoch 2" in err
    assert main(["sweep", *settings, "--seeds", "3", "--out", "pop"]) == 0
    err = capsys.readouterr().err
    assert "trained as one population" in err and "[1/2] mean of 3 members: epoch 1" in err
