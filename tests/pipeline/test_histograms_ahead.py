"""The report's histogram figure drawn ahead (trainwell.pipeline.histograms_ahead): sent to the drawing process
during training once the last monitor snapshot is taken, equal byte for byte to the figure drawn from the run's
files afterwards; drawn again at the end when a snapshot came after the one it showed."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest

from trainwell.config import load_config
from trainwell.pipeline import fit
from trainwell.pipeline.histograms_ahead import HistogramsAhead
from trainwell.train.trainer import Trainer
from trainwell.viz import figure_process
from trainwell.viz.report import draw_figures

TINY = ["data.name=spirals", "data.options={arms = 3, n_per_class = 40}", "model.kind=mlp", "model.hidden=[16]",
        "train.epochs=3", "train.batch_size=30", "doctor.monitor_every=3", "doctor.preflight=false"]


@pytest.fixture
def drawing_process():
    figure_process.start()
    yield figure_process._process
    figure_process.stop()


@pytest.mark.slow  # seconds each
def test_the_last_snapshot_s_figure_is_sent_during_training_and_equals_the_one_drawn_after(tmp_path, monkeypatch,
                                                                                         drawing_process):
    sent, fitting = [], []
    add = figure_process.Figures.add

    def recording_add(self, kind, **arguments):
        if arguments.get("figures") == ("histograms",):
            sent.append(bool(fitting))
        return add(self, kind, **arguments)

    monkeypatch.setattr(figure_process.Figures, "add", recording_add)
    trainer_fit = Trainer.fit

    def fit_marked(self, *args, **kwargs):
        fitting.append(True)
        try:
            return trainer_fit(self, *args, **kwargs)
        finally:
            fitting.clear()

    monkeypatch.setattr(Trainer, "fit", fit_marked)
    run = fit(load_config(None, TINY), out=tmp_path / "run", quiet=True).run_dir
    assert sent == [True]  # once, while training: not drawn again at the end
    shutil.copy(run / "figures" / "histograms.png", tmp_path / "ahead.png")
    draw_figures(run, figures=("histograms",))  # from the finished run's files, here
    assert (tmp_path / "ahead.png").read_bytes() == (run / "figures" / "histograms.png").read_bytes()


def _monitor(*steps, every=10):
    return SimpleNamespace(records=[{"step": s} for s in steps], every=every)


def test_a_snapshot_with_a_cadence_left_is_not_drawn_ahead(tmp_path, monkeypatch):
    monkeypatch.setattr(figure_process, "running", lambda: True)
    monitor = _monitor(50)
    ahead = HistogramsAhead(monitor, tmp_path, total_steps=60)  # 50 + 10 <= 60: one more snapshot may come
    ahead.on_fit_start(None)
    monitor.records.append({"step": 50})
    ahead.on_batch_end(None)
    assert ahead.take() is None


def test_no_drawing_process_no_figure_ahead(tmp_path, monkeypatch):
    monkeypatch.setattr(figure_process, "running", lambda: False)
    monitor = _monitor()
    ahead = HistogramsAhead(monitor, tmp_path, total_steps=60)
    monitor.records.append({"step": 55})
    ahead.on_batch_end(None)
    assert ahead.take() is None


def test_a_snapshot_after_the_one_drawn_makes_the_run_draw_it_again(tmp_path, monkeypatch):
    """The job sent is waited for (it writes the same file) and take() says to draw the figure again."""
    monkeypatch.setattr(figure_process, "running", lambda: True)
    jobs = []

    class Recorded:
        def __init__(self):
            self.finished = False

        def add(self, kind, **arguments):
            jobs.append(self)

        def finish(self):
            self.finished = True

    monkeypatch.setattr(figure_process, "Figures", Recorded)
    monitor = _monitor()
    ahead = HistogramsAhead(monitor, tmp_path, total_steps=60)
    monitor.records.append({"step": 55})
    ahead.on_batch_end(None)
    assert len(jobs) == 1
    monitor.records.append({"step": 58})  # a snapshot came after all (a run resumed with a longer plan)
    assert ahead.take() is None and jobs[0].finished
    monitor.records.append({"step": 59})
    ahead.on_batch_end(None)
    assert ahead.take() is jobs[1] and not jobs[1].finished  # the last one shown: the run waits for it at its end
