"""TensorBoard event files read back: per-step loss and learning rate, hparams with final metrics, the doctor's
pre-flight at step 0."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainwell.optim import Schedule
from trainwell.train.callbacks import StepLosses
from trainwell.train.loggers import TensorBoardLogger, flat_hparams
from trainwell.train.trainer import Trainer

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402


def read(log_dir) -> EventAccumulator:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def test_every_step_has_its_training_loss_and_the_rate_it_trained_with(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = Schedule(torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 / (1 + s)), "step")  # 0.1 / k at step k
    steps, tb = StepLosses(), TensorBoardLogger(tmp_path / "tb", every=0)
    Trainer(model, opt, epochs=2, batch_size=16, schedule=schedule, callbacks=[steps, tb], device="cpu",
            progress=None).fit((x, y))
    tb.close()
    events = read(tmp_path / "tb")
    loss, lr = events.Scalars("loss/train_step"), events.Scalars("lr/step")
    assert [e.step for e in loss] == [e.step for e in lr] == list(range(1, 9))  # 2 epochs x 4 batches
    assert [e.value for e in loss] == pytest.approx(steps.losses, rel=1e-6)
    assert [e.value for e in lr] == pytest.approx([0.1 / k for k in range(1, 9)], rel=1e-6)
    epoch_lr = events.Scalars("lr")  # the epoch's scalar is the rate of its first step
    assert [e.value for e in epoch_lr] == pytest.approx([0.1, 0.1 / 5], rel=1e-6)


def test_hparams_carry_the_config_and_the_final_metrics(tmp_path):
    cfg = {"optim": {"lr": 0.03, "name": "adam"}, "model": {"hidden": [8, 8], "norm": None}, "train": {"seed": 2}}
    hp = flat_hparams(cfg)
    assert hp == {"optim.lr": 0.03, "optim.name": "adam", "model.hidden": "[8, 8]", "model.norm": "none",
                  "train.seed": 2}
    tb = TensorBoardLogger(tmp_path / "tb", every=0)
    tb.log_hparams(hp, {"test_acc": 0.9, "val_loss": 0.25, "test_loss": None, "broken": float("nan")})
    tb.close()
    events = read(tmp_path / "tb")
    content = events.PluginTagToContent("hparams")
    data = {tag: plugin_data_pb2.HParamsPluginData.FromString(raw) for tag, raw in content.items()}
    start = next(d.session_start_info for d in data.values() if d.HasField("session_start_info"))
    assert start.hparams["optim.lr"].number_value == pytest.approx(0.03)
    assert start.hparams["optim.name"].string_value == "adam"
    assert start.hparams["model.hidden"].string_value == "[8, 8]"
    experiment = next(d.experiment for d in data.values() if d.HasField("experiment"))
    assert {m.name.tag for m in experiment.metric_infos} == {"final/test_acc", "final/val_loss"}
    assert events.Scalars("final/test_acc")[0].value == pytest.approx(0.9)


def test_the_preflight_is_at_step_0_and_the_postflight_at_the_last_step(tmp_path):
    tb = TensorBoardLogger(tmp_path / "tb", every=0)
    verdicts = [{"phase": "pre", "check": "initial loss", "status": "pass", "value": "2.3"},
                {"phase": "post", "check": "learning rate", "status": "pass", "value": "fine"}]
    tb.log_verdicts(verdicts, step=120)
    tb.close()
    events = read(tmp_path / "tb")
    pre = events.Tensors("doctor/pre-flight/text_summary")
    post = events.Tensors("doctor/post-flight/text_summary")
    assert [e.step for e in pre] == [0] and [e.step for e in post] == [120]
    assert "| initial loss | pass | 2.3 |" in pre[0].tensor_proto.string_val[0].decode()


@pytest.mark.slow
def test_a_fit_writes_steps_hparams_and_its_preflight_at_step_0(workdir):
    import json

    from trainwell.config import load_config
    from trainwell.pipeline import fit

    cfg = load_config(None, ["data.name=spirals", "data.options={arms = 3, n_per_class = 40}", "model.kind=mlp",
                             "model.hidden=[16]", "train.epochs=2", "train.batch_size=30", "optim.lr=0.05",
                             "optim.schedule=onecycle", "report.tensorboard=true", "report.enabled=false"])
    result = fit(cfg, out="run", quiet=True)
    events = read(result.run_dir / "tensorboard")
    steps = result.summary["steps"]
    assert [e.step for e in events.Scalars("loss/train_step")] == list(range(1, steps + 1))
    assert max(e.value for e in events.Scalars("lr/step")) == pytest.approx(0.05, rel=0.05)  # one-cycle's peak
    assert [e.step for e in events.Tensors("doctor/pre-flight/text_summary")] == [0]
    assert [e.step for e in events.Tensors("doctor/post-flight/text_summary")] == [steps]
    final = json.loads((result.run_dir / "summary.json").read_text())["final"]
    assert events.Scalars("final/test_acc")[0].value == pytest.approx(final["test_acc"])
    assert events.PluginTagToContent("hparams")  # the HParams entry is in the same event files


def test_metrics_csv_equals_the_history_after_every_epoch_and_at_the_end(tmp_path):
    """The CSV appends a row per epoch and is rewritten only when a column appears (or at the end): after every
    epoch the file reads exactly as ``history_csv`` of the history so far, whatever the logging path."""
    from trainwell.train.callbacks import Callback
    from trainwell.train.loggers import CSVLogger, history_csv

    path = tmp_path / "metrics.csv"
    seen = []

    class NewColumnAtEpoch3(Callback):  # a user's callback adding a metric from the third epoch on
        def on_epoch_end(self, state):
            if len(state.history) >= 3:
                state.history[-1]["my_metric"] = 0.5 * len(state.history)

    class Reader(Callback):
        def on_epoch_end(self, state):
            seen.append(path.read_text(encoding="utf-8") == history_csv(state.history))

    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=6, batch_size=16,
                      callbacks=[NewColumnAtEpoch3(), CSVLogger(path), Reader()])
    state = trainer.fit((x, y), val=(x, y))
    assert seen == [True] * 6
    text = path.read_text(encoding="utf-8")
    assert text == history_csv(state.history) and "my_metric" in text.splitlines()[0]
    assert len(text.splitlines()) == 7  # header + one row per epoch, nothing appended twice


def test_metrics_csv_takes_metrics_added_after_it_and_a_second_fit(tmp_path):
    """A callback after the logger adds a metric to one epoch's record only: the next epoch's file already has its
    column and value (the logger looks at the last two records), and the end equals the history; the same logger
    given to a second fit writes that fit's history, not rows appended to the first."""
    from trainwell.train.callbacks import Callback
    from trainwell.train.loggers import CSVLogger, history_csv

    path = tmp_path / "metrics.csv"
    lag = []

    class LateMetric(Callback):
        def on_epoch_end(self, state):
            if len(state.history) == 2:
                state.history[-1]["late"] = 7.0
            lag.append(path.read_text(encoding="utf-8") == history_csv(state.history[:-1] + [
                {k: v for k, v in state.history[-1].items() if k != "late"}]))

    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    logger = CSVLogger(path)
    for epochs in (5, 3):
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        state = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=epochs, batch_size=16,
                        callbacks=[logger, LateMetric()]).fit((x, y))
        text = path.read_text(encoding="utf-8")
        assert text == history_csv(state.history) and len(text.splitlines()) == epochs + 1
    assert lag == [True] * 8
    assert "late" in text.splitlines()[0] and ",7.0" in text.splitlines()[2]


def test_metrics_csv_removed_during_the_run_is_written_whole_again(tmp_path):
    """A metrics.csv deleted between epochs (a user cleaning up, a sync tool) comes back with its header and every
    row at the next epoch, not as a headerless row appended to a new file."""
    from trainwell.train.callbacks import Callback
    from trainwell.train.loggers import CSVLogger, history_csv

    path = tmp_path / "metrics.csv"

    class Remove(Callback):
        def on_epoch_end(self, state):
            if state.epoch == 2:
                path.unlink()

    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    seen = []

    class Reader(Callback):
        def on_epoch_end(self, state):
            seen.append(path.exists() and path.read_text(encoding="utf-8") == history_csv(state.history))

    Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=5, batch_size=16,
            callbacks=[CSVLogger(path), Remove(), Reader()]).fit((x, y))
    assert seen == [True, True, False, True, True]


def test_a_fresh_metrics_csv_is_created_without_an_atomic_rewrite_and_an_existing_one_is_rewritten(tmp_path,
                                                                                                   monkeypatch):
    """The first epoch of a fresh run creates metrics.csv by one exclusive write (no temp file, no syncs); a file
    already there (a stale one, or a resumed run's with a torn last line) is rewritten whole. Either way the file
    reads as ``history_csv`` of the history after every epoch, and the end of the fit rewrites it atomically."""
    import trainwell.rundir
    from trainwell.train.callbacks import Callback
    from trainwell.train.loggers import CSVLogger, history_csv

    writes = []
    atomic = trainwell.rundir.atomic_write_text
    monkeypatch.setattr(trainwell.rundir, "atomic_write_text", lambda p, t: (writes.append(p), atomic(p, t)))
    path = tmp_path / "metrics.csv"
    seen = []

    class Reader(Callback):
        def on_epoch_end(self, state):
            seen.append(path.read_text(encoding="utf-8") == history_csv(state.history))

    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    for stale, atomic_writes in ((False, 1), (True, 2)):
        if stale:
            path.write_text("epoch,train_loss\n1,0.5\n2,0.", encoding="utf-8")  # a torn last line
        writes.clear()
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=3, batch_size=16,
                callbacks=[CSVLogger(path), Reader()]).fit((x, y))
        assert writes == [path] * atomic_writes  # fresh: the end only; stale: the first epoch and the end
    assert seen == [True] * 6
