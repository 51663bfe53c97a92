"""report.html: contents, the live refresh, interrupted runs, sweep and prune folders, loggers, figures."""

import json
import re

import pytest
import torch
from torch import nn

from trainwell.cli import main
from trainwell.config import load_config
from trainwell.errors import ConfigError, TrainwellError
from trainwell.pipeline import fit
from trainwell.train.callbacks import Callback
from trainwell.viz import group_report, plots
from trainwell.viz.build import build_report
from trainwell.viz.configview import config_overrides
from trainwell.viz.report import layer_titles

TINY = ["data.name=spirals", "data.options={arms = 3, n_per_class = 60}", "model.kind=mlp", "model.hidden=[64,64]",
        "train.epochs=3", "train.batch_size=32", "doctor.monitor_every=5", "report.every=1",
        "report.every_seconds=0"]


def charts_of(page: str) -> dict:
    blob = re.search(r'<script type="application/json" id="trainwell-data">(.*?)</script>', page, re.S).group(1)
    return json.loads(blob.replace("<\\/", "</"))


class PageSpy(Callback):
    """Reads report.html at the start of every epoch (after the live report's own hooks)."""

    def __init__(self, path):
        self.path, self.pages = path, []

    def on_epoch_start(self, state):
        self.pages.append(self.path.read_text(encoding="utf-8"))


@pytest.mark.slow  # over 2 s: a subprocess or a whole fit
def test_report_written_at_start_and_refreshed_every_epoch_then_final(workdir):
    spy = PageSpy(workdir / "run" / "report.html")
    result = fit(load_config(None, TINY), out="run", quiet=True, callbacks=[spy])
    assert "running: 0 of 3 epochs" in spy.pages[0] and "running: 1 of 3 epochs" in spy.pages[1]
    assert len(charts_of(spy.pages[2])["lines"][1]["x"]) == 2  # two epochs of the loss-per-epoch chart
    page = (result.run_dir / "report.html").read_text(encoding="utf-8")
    assert "finished: completed 3 epochs" in page
    for section in ("overview", "curves", "monitors", "doctor", "model", "config-section", "files-section"):
        assert f"id='{section}'" in page
    assert "https://" not in page.replace("https://github.com/leeoniya/uPlot", "")  # nothing loaded from a network
    assert f"{result.summary['params']:,}" in page and "4,547" in page  # numbers formatted as the CLI prints them
    assert f"{100 * result.summary['final']['test_acc']:.2f}%" in page
    charts = charts_of(page)
    ids = [c["id"] for c in charts["lines"]]
    assert ids[:4] == ["chart-step-loss", "chart-loss", "chart-acc", "chart-lr"]
    step_loss = charts["lines"][0]
    assert step_loss["x"] == list(range(1, result.summary["steps"] + 1)) and len(step_loss["series"][0]["y"]) == 18
    loss = charts["lines"][1]
    assert loss["x"] == [1, 2, 3] and loss["xlabel"] == "epoch" and loss["ylabel"] == "loss"
    best = result.summary["best_epoch"] + 1
    assert {"x": best, "label": f"best epoch {best}", "color": "#1a7f37"} in loss["marks"]
    assert any(m["label"] == "stop: completed 3 epochs" for m in loss["marks"])
    hists = charts["hists"][0]
    assert len(hists["frames"]) == 3 and hists["frames"][0]["step"] == 5  # every 5 steps, one observed step each
    assert hists["layers"][0]["title"] == "2 (ReLU) after 1 (Linear): activation"
    # doctor verdicts grouped by phase, with expected and advice columns
    for phase in ("pre", "monitor", "post"):
        assert f"data-phase='{phase}'" in page
    assert "<th>expected</th>" in page and "<th>advice</th>" in page
    # overrides are highlighted in the config
    assert "<mark>epochs = 3</mark>" in page and "<mark>kind = &quot;mlp&quot;</mark>" in page
    for name in ("metrics.jsonl", "metrics.csv", "summary.json", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert f"href='{name}'" in page
    csv = (result.run_dir / "metrics.csv").read_text().splitlines()
    assert csv[0].startswith("epoch,step,train_loss") and [r.split(",")[0] for r in csv[1:]] == ["1", "2", "3"]


class Crash(Callback):
    def on_epoch_start(self, state):
        if state.epoch == 2:
            raise RuntimeError("power cut")


@pytest.mark.slow  # seconds each
def test_an_interrupted_run_has_a_report_and_trainwell_report_rebuilds_it(workdir, capsys):
    with pytest.raises(RuntimeError):
        fit(load_config(None, TINY), out="run", quiet=True, callbacks=[Crash()])
    page = (workdir / "run" / "report.html").read_text(encoding="utf-8")
    assert "running: 2 of 3 epochs" in page  # the refresh after epoch 2 survives the crash
    assert main(["report", "run"]) == 0
    page = (workdir / "run" / "report.html").read_text(encoding="utf-8")
    assert "no summary.json: the run was interrupted (or is still running) after 2 of 3 epochs" in page
    assert "From the last finished epoch (2)" in page and len(charts_of(page)["lines"][1]["x"]) == 2


def test_report_on_anything_else_is_a_one_line_error(workdir, capsys):
    (workdir / "notes").mkdir()
    assert main(["report", "notes"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a" not in err and "trainwell fit, sweep or prune" in err
    assert main(["report", "missing"]) == 2 and "does not exist" in capsys.readouterr().err
    with pytest.raises(TrainwellError):
        build_report(workdir / "notes")


def _sweep_folder(path):
    path.mkdir()
    (path / ".trainwell-run").write_text(json.dumps({"kind": "sweep"}))
    (path / "config.toml").write_text('name = "sw"\n\n[optim]\nlr = 0.1\n')
    rows = []
    for m, (lr, seed, acc) in enumerate([(0.1, 0, 0.9), (0.1, 1, 0.8), (0.01, 0, 0.5), (0.01, 1, 0.5)]):
        rows.append({"optim.lr": lr, "train.seed": seed, "train_loss": 1 - acc, "train_acc": acc,
                     "val_loss": 1 - acc, "val_acc": acc, "test_loss": 1 - acc, "test_acc": acc, "epochs": 2,
                     "stop_epoch": 0 if m else None})
    (path / "results.json").write_text(json.dumps(rows))
    (path / "summary.json").write_text(json.dumps({"mode": "population", "members": 4, "seeds": 2,
                                                   "grid": {"optim.lr": ["0.1", "0.01"]}, "wall_s": 1.0}))
    (path / "metrics.jsonl").write_text("".join(
        json.dumps({"member": m, "epoch": e, "val_loss": 1.0 / (e + 1), "val_acc": 0.5, "train_loss": 1.0}) + "\n"
        for m in range(4) for e in range(2)))


def test_sweep_report_rows_mean_std_and_a_curve_per_setting_with_its_band(workdir):
    _sweep_folder(workdir / "sw")
    page = build_report(workdir / "sw").read_text(encoding="utf-8")
    assert "85.00% ± 7.07%" in page and "50.00% ± 0.00%" in page  # mean ± sample std over the two seeds
    assert page.count("member-") >= 4 and "early stop after epoch 1" in page
    val_loss = charts_of(page)["lines"][0]
    assert val_loss["id"] == "sweep-val_loss" and val_loss["x"] == [1, 2]
    curves = [s for s in val_loss["series"] if not s.get("band")]
    assert [s["label"] for s in curves] == ["★ lr=0.1", "lr=0.01"]  # one per setting, the best marked
    assert curves[0]["color"] != curves[1]["color"] and curves[0]["y"] == [1.0, 0.5]  # the mean over seeds
    assert len(val_loss["series"]) == 6 and val_loss["bands"][0]["series"] == [2, 3]  # min..max over seeds


def test_sweep_report_gives_population_members_their_own_page(workdir):
    _sweep_folder(workdir / "sw")
    member = workdir / "sw" / "member-0"
    member.mkdir()
    (member / "config.toml").write_text('name = "sw"\n')
    (member / "metrics.jsonl").write_text(json.dumps({"epoch": 0, "step": 3, "train_loss": 1.0, "lr": 0.1}) + "\n")
    (member / "summary.json").write_text(json.dumps({"name": "sw", "final": {"val_acc": 0.9}, "epochs": 1}))
    page = build_report(workdir / "sw").read_text(encoding="utf-8")
    assert "href='member-0/report.html'" in page and (member / "report.html").exists()
    assert "href='member-1/report.html'" not in page  # no folder, no link


def test_prune_report_accuracy_vs_density_with_percentage_ticks(workdir):
    base = workdir / "pr"
    base.mkdir()
    (base / ".trainwell-run").write_text(json.dumps({"kind": "lottery"}))
    rows = [{"round": r, "kind": k, "density": d, "test_acc": a, "val_acc": a, "early_stop_step": 10,
             "run_dir": str(base / f"round-{r}{'' if k == 'ticket' else '-' + k}")}
            for r, k, d, a in [(0, "ticket", 1.0, 0.9), (1, "ticket", 0.8, 0.91), (1, "random", 0.8, 0.85)]]
    (base / "results.json").write_text(json.dumps(rows))
    page = build_report(base).read_text(encoding="utf-8")
    chart = charts_of(page)["lines"][0]
    assert chart["xsplits"] == [0.8, 1.0] and chart["xfmt"] == "density" and chart["xlog"] and chart["xrev"]
    assert [s["y"] for s in chart["series"]] == [[0.91, 0.9], [0.85, 0.9]]  # random starts from the dense round
    assert "80.00%" in page and "round-1-random" in page
    assert group_report.mean_std([0.9, 0.8]) == pytest.approx((0.85, 0.0707107), abs=1e-6)


def test_layer_titles_name_modules_and_what_feeds_them():
    rows = [{"name": "features.0", "kind": "Conv1d", "params": 10}, {"name": "features.1", "kind": "ReLU", "params": 0}]
    assert layer_titles(rows)["features.1"] == "features.1 (ReLU) after features.0 (Conv1d)"


def test_config_overrides_are_the_keys_that_differ_from_the_defaults():
    assert config_overrides('name = "run"\n[optim]\nlr = 0.003\nname = "adam"\n') == {"optim.lr": (0.003, 0.01)}


def test_first_layer_figures_share_one_scale_with_a_zero_line_or_a_colour_bar():
    torch.manual_seed(0)
    conv = nn.Conv1d(1, 12, 5)
    fig = plots.first_layer_figure(nn.Sequential(conv, nn.ReLU()), (1, 20))
    axes = fig.axes
    assert len(axes) == 2 and axes[0].get_xlabel() == "tap" and "weight" in axes[0].get_ylabel()
    w = conv.weight.detach()[:, 0]
    limit = float(w.abs().max())
    zero_lines = [ln for ax in axes for ln in ax.lines if len(set(ln.get_ydata())) == 1]
    curves = [ln for ax in axes for ln in ax.lines if len(set(ln.get_ydata())) > 1]
    assert len(zero_lines) == len(curves) == 12
    for unit, curve, zero in zip(w, curves, zero_lines, strict=True):  # each unit over its own zero line, unscaled
        assert list(curve.get_ydata() - zero.get_ydata()[0]) == pytest.approx(unit.tolist(), abs=1e-6)
    gap = zero_lines[0].get_ydata()[0] - zero_lines[1].get_ydata()[0]
    assert gap > 2 * limit  # rows never overlap
    fig2 = plots.first_layer_figure(nn.Sequential(nn.Conv2d(1, 4, 3)), (1, 8, 8))
    images = [ax.images[0] for ax in fig2.axes if ax.images]
    assert len({im.get_clim() for im in images}) == 1 and any(ax.get_ylabel() == "weight" for ax in fig2.axes)


@pytest.mark.slow
def test_tensorboard_events_are_readable(workdir):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = fit(load_config(None, [*TINY, "report.tensorboard=true"]), out="run", quiet=True)
    events = EventAccumulator(str(result.run_dir / "tensorboard"),
                              size_guidance={"scalars": 0, "histograms": 0, "images": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    assert [e.value for e in events.Scalars("accuracy/val")] == pytest.approx(
        [r["val_acc"] for r in map(json.loads, (result.run_dir / "metrics.jsonl").read_text().splitlines())])
    assert {"loss/train", "loss/val", "accuracy/train", "lr", "epoch"} <= set(tags["scalars"])
    assert "weights/1.weight" in tags["histograms"]
    assert "activations/2 (ReLU)" in tags["histograms"] and "gradients/2 (ReLU)" in tags["histograms"]
    assert [e.step for e in events.Histograms("activations/2 (ReLU)")] == [5, 10, 15]
    assert tags["images"] == ["first_layer/weights"] and len(events.Images("first_layer/weights")) == 2
    text = events.Tensors("doctor/pre-flight/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| initial loss | pass |" in text
    assert "tensorboard" in (result.run_dir / "report.html").read_text()


def test_tensorboard_missing_is_a_one_line_config_error_before_any_folder(workdir, monkeypatch):
    from trainwell.train import loggers

    def missing():
        raise ImportError("no tensorboard")

    monkeypatch.setattr(loggers, "require_tensorboard", missing)
    with pytest.raises(ConfigError, match=r"trainwell\[tensorboard\]"):
        fit(load_config(None, [*TINY, "report.tensorboard=true"]), out="run", quiet=True)
    assert not (workdir / "run").exists()


def test_set_with_a_space_gets_a_one_line_hint(workdir, capsys):
    assert main(["fit", "--set", "train.epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "use key=value with no space: --set train.epochs=3" in err
    assert main(["doctor", "--set", "optim.lr"]) == 2
    assert "--set optim.lr=VALUE" in capsys.readouterr().err


def test_tables_outside_a_terminal_are_whole(workdir, capsys):
    assert main(["summary", "--set", "model.kind=mlp", "--set", "model.hidden=[123456,7]", "--input-shape", "1,40",
                 "--classes", "10"]) == 0
    out = capsys.readouterr().out
    assert "…" not in out and "5,061,696" in out  # 40 x 123,456 + 123,456 parameters, not cut to fit 80 columns
    assert max(len(line) for line in out.splitlines()) > 80


@pytest.mark.slow  # seconds each
def test_fit_says_what_it_does_before_training_and_counts_epochs_from_one(workdir, capsys):
    assert main(["fit", "--set", "data.name=xor", "--set", "model.kind=mlp", "--set", "model.hidden=[8]",
                 "--set", "train.epochs=2", "--out", "run"]) == 0
    err = capsys.readouterr()
    lines = err.err.splitlines()
    checks = [line for line in lines if line.startswith("pre-flight (")]  # "(n of m)" as each check starts
    assert lines[0] == "running the doctor's pre-flight checks..." and checks[0].startswith("pre-flight (1 of ")
    assert lines[1:1 + len(checks)] == checks and lines[1 + len(checks)].startswith("pre-flight: ")
    assert any(line.startswith("[2/2] epoch 2  loss") for line in lines)
    assert "(best epoch by val_loss: " in err.out and "run dir: run  (report: run/report.html)" in err.out


def test_on_a_terminal_fit_prints_its_first_line_before_importing_torch(workdir):
    import os
    import pty
    import subprocess
    import sys

    primary, secondary = pty.openpty()
    code = ("import sys, trainwell.cli as c; sys.argv = ['trainwell', 'fit', '--set', 'nope=1'];"
            "c.main(); print('torch loaded:', 'torch' in sys.modules, file=sys.stderr)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], stderr=secondary, stdout=subprocess.DEVNULL, env=env, timeout=120)
    os.close(secondary)
    text = os.read(primary, 4096).decode()
    os.close(primary)
    lines = text.splitlines()
    assert lines[0] == "trainwell fit: loading the config, data and model..."
    assert "unknown config key 'nope'" in lines[1] and lines[-1] == "torch loaded: False"  # errors come first too


def test_on_a_terminal_a_second_bar_counts_the_steps_of_each_epoch():
    from types import SimpleNamespace

    from trainwell.train.progress import RichProgress, StepProgress

    bar = RichProgress()
    bar.progress.console.quiet = True
    bar.start(total=3)
    steps = StepProgress(bar, steps_per_epoch=5)
    for epoch in range(2):
        steps.on_epoch_start(SimpleNamespace(epoch=epoch))
        for _ in range(5 - epoch):
            steps.on_batch_end(None)
    bar.stop()
    task = bar.progress.tasks[1]
    assert task.total == 5 and task.completed == 4 and task.description == "epoch 2"


@pytest.mark.parametrize("field, value", [("stop_epoch", "1"), ("test_acc", "high"), ("failed", "no"),
                                          ("epochs", -2)])
def test_a_sweep_results_file_with_a_wrong_field_is_one_line(workdir, capsys, field, value):
    """A sweep folder's results.json edited by hand: `trainwell report` names the file, row and field, exit 2."""
    from trainwell.cli import main

    _sweep_folder(workdir / "sw")
    rows = json.loads((workdir / "sw" / "results.json").read_text())
    rows[1][field] = value
    (workdir / "sw" / "results.json").write_text(json.dumps(rows))
    capsys.readouterr()
    assert main(["report", str(workdir / "sw")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "results.json: row 2" in err and repr(field) in err


def test_a_sweep_metrics_file_with_a_string_epoch_is_one_line(workdir, capsys):
    from trainwell.cli import main

    _sweep_folder(workdir / "sw")
    with open(workdir / "sw" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"member": 0, "epoch": "2", "val_loss": 0.1}) + "\n")
    capsys.readouterr()
    assert main(["report", str(workdir / "sw")]) == 2
    assert "metrics.jsonl: record 9: field 'epoch'" in capsys.readouterr().err


@pytest.mark.parametrize("kind, name", [("fit", "summary.json"), ("fit", "preflight.json"), ("fit", "model.json"),
                                        ("sweep", "results.json"), ("sweep", "summary.json")])
def test_a_file_that_is_not_json_is_named_not_read_as_missing(workdir, capsys, kind, name):
    """trainwell writes each JSON file whole: one that does not parse was edited or damaged. A page that read it as
    missing would call a finished fit interrupted ("no summary.json"), drop its verdicts or layer table, or call a
    finished sweep unfinished."""
    folder = workdir / "r"
    if kind == "sweep":
        _sweep_folder(folder)
    else:
        folder.mkdir()
        (folder / "config.toml").write_text("")
        (folder / "summary.json").write_text(json.dumps({"epochs": 1, "steps": 3}))
    (folder / name).write_text('{"epochs": 1,')  # cut short by hand
    assert main(["report", "r"]) == 2
    err = capsys.readouterr().err
    assert err == (f"trainwell report: error: r/{name}: not valid JSON (Expecting property name enclosed in "
                   "double quotes at line 1, column 14): the file is not written by trainwell, or damaged\n")
    assert not (folder / "report.html").exists()
