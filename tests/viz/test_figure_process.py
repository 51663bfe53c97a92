"""The drawing process (trainwell.viz.figure_process) draws the same figures as this process, byte for byte, and
any failure of it moves the drawing back here, where the figure's own error is raised."""

from __future__ import annotations

import io
import os
import pickle
import signal
import time

import numpy as np
import pytest
import torch
from torch import nn

from trainwell import manifest
from trainwell.cli import main
from trainwell.config import load_config
from trainwell.pipeline import fit
from trainwell.viz import figure_process
from trainwell.viz.first_layer import first_layer_units
from trainwell.viz.plots import first_layer_weights
from trainwell.viz.report import PNG_FIGURES, draw_figures

TINY = ["data.name=spirals", "data.options={arms = 3, n_per_class = 40}", "model.kind=mlp", "model.hidden=[16]",
        "train.epochs=2", "train.batch_size=32", "doctor.monitor_every=2", "doctor.preflight=false"]


@pytest.fixture
def drawing_process():
    figure_process.start()
    yield figure_process._process
    figure_process.stop()


@pytest.fixture
def drawn_here(monkeypatch):
    """The kinds of the jobs this process drew itself."""
    calls = []
    draw = figure_process._draw
    monkeypatch.setattr(figure_process, "_draw", lambda kind, arguments: (calls.append(kind), draw(kind, arguments)))
    return calls


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return fit(load_config(None, TINY), out=tmp_path_factory.mktemp("fit") / "run", quiet=True).run_dir


def _draw_all(figures, run, folder, models):
    for figure in PNG_FIGURES:
        figures.add("report", run_dir=run, figures=(figure,), best_epoch=1)
    for i, (model, shape) in enumerate(models):
        figures.add("first_layer", units=first_layer_units(model, shape), path=folder / f"first-{i}.png")
    figures.finish()


MODELS = [(nn.Sequential(nn.Conv1d(1, 12, 5), nn.ReLU()), (1, 20)), (nn.Sequential(nn.Conv2d(1, 4, 3)), (1, 8, 8)),
          (nn.Sequential(nn.Flatten(), nn.Linear(64, 5)), (1, 8, 8))]


@pytest.mark.slow
def test_figures_drawn_there_equal_the_ones_drawn_here(run_dir, tmp_path, drawing_process, drawn_here):
    for p in (run_dir / "figures").glob("*.png"):  # the fit's own
        p.unlink()
    torch.manual_seed(0)
    _draw_all(figure_process.Figures(), run_dir, tmp_path, MODELS)
    assert drawn_here == []  # all of them were drawn by the other process
    there = {p.name: p.read_bytes() for p in [*(run_dir / "figures").glob("*.png"), *tmp_path.glob("*.png")]}
    for p in [*(run_dir / "figures").glob("*.png"), *tmp_path.glob("*.png")]:
        p.unlink()
    figure_process.stop()
    draw_figures(run_dir, ("histograms",))
    draw_figures(run_dir, ("learning_curves",), best_epoch=1)
    for i, (model, shape) in enumerate(MODELS):
        first_layer_weights(model, shape, tmp_path / f"first-{i}.png")  # the function a user calls
    here = {p.name: p.read_bytes() for p in [*(run_dir / "figures").glob("*.png"), *tmp_path.glob("*.png")]}
    assert set(there) == {"histograms.png", "learning_curves.png", "first-0.png", "first-1.png", "first-2.png"}
    assert there == here
    assert manifest.foreign_files(run_dir) == []  # the other process recorded what it wrote


@pytest.mark.slow  # seconds each
def test_a_figure_that_fails_there_is_drawn_here_with_its_own_error(tmp_path, drawing_process, drawn_here):
    (tmp_path / "a-file").write_text("")
    figures = figure_process.Figures()
    units = first_layer_units(*MODELS[0])
    figures.add("first_layer", units=units, path=tmp_path / "a-file" / "w.png")  # its folder cannot be made
    figures.add("first_layer", units=units, path=tmp_path / "w.png")
    with pytest.raises(OSError):
        figures.finish()
    assert drawn_here == ["first_layer"]
    assert drawing_process.alive  # one failed figure does not end the process
    figures = figure_process.Figures()
    figures.add("first_layer", units=units, path=tmp_path / "again.png")
    figures.finish()
    assert drawn_here == ["first_layer"] and (tmp_path / "again.png").read_bytes() == (tmp_path / "w.png").read_bytes()


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_process_that_died_leaves_the_drawing_here(tmp_path, drawing_process, drawn_here):
    units = first_layer_units(*MODELS[1])
    figures = figure_process.Figures()
    figures.add("first_layer", units=units, path=tmp_path / "sent.png")  # sent, never answered
    drawing_process._proc.kill()
    drawing_process._proc.wait()
    figures.add("first_layer", units=units, path=tmp_path / "after.png")  # not sent
    figures.finish()
    assert drawn_here == ["first_layer", "first_layer"]
    assert (tmp_path / "sent.png").read_bytes() == (tmp_path / "after.png").read_bytes()


@pytest.mark.slow  # seconds each
def test_without_fork_the_process_draws_one_job_after_another(tmp_path, drawn_here):
    process = figure_process.FigureProcess(sequential=True)
    try:
        jobs = [process.submit("first_layer", {"units": first_layer_units(m, s), "path": tmp_path / f"{i}.png"})
                for i, (m, s) in enumerate(MODELS)]
        assert all(process.wait(job) for job in jobs)
    finally:
        process.stop()
    assert drawn_here == [] and sorted(p.name for p in tmp_path.glob("*.png")) == ["0.png", "1.png", "2.png"]
    assert process._proc.returncode is not None  # ended and reaped


def test_an_unknown_job_is_an_error_naming_the_known_ones():
    with pytest.raises(ValueError, match="'first_layer' or 'report'"):
        figure_process._draw("bars", {})


def test_frames_are_read_whole_however_the_pipe_cuts_them():
    objects = [(0, "report", {"run_dir": "x" * 70_000}), (1, "first_layer", {"units": np.arange(6.0)}), (2, "x", {})]
    stream = b"".join(figure_process._frame(o) for o in objects)
    for cut in (1, 3, 4, 5, 4096, 70_001, len(stream)):
        buffer, got = bytearray(), []
        for start in range(0, len(stream), cut):
            buffer += stream[start:start + cut]
            got += figure_process._frames(buffer)
        assert [pickle.dumps(g) for g in got] == [pickle.dumps(o) for o in objects] and not buffer


@pytest.mark.slow
def test_trainwell_fit_draws_in_the_process_and_stops_it(workdir, drawn_here, monkeypatch):
    started = []
    start = figure_process.start
    monkeypatch.setattr(figure_process, "start", lambda: (start(), started.append(figure_process._process)))
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert main(["fit", "--out", "run", "--quiet", *[a for item in TINY for a in ("--set", item)]]) == 0
    assert len(started) == 1 and started[0]._proc.returncode is not None  # ended and reaped
    assert figure_process._process is None
    assert drawn_here == []
    assert {p.name for p in (workdir / "run" / "figures").glob("*.png")} == {
        "histograms.png", "learning_curves.png", "first_layer_weights.png"}
    assert manifest.foreign_files(workdir / "run") == []
    assert "first_layer_weights.png" in (workdir / "run" / "report.html").read_text()  # the page lists them all


def test_under_torchrun_no_process_is_started(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    figure_process.start()
    assert figure_process._process is None


@pytest.mark.slow  # seconds each
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_stopped_with_a_figure_unanswered_the_process_writes_it_and_ends(tmp_path, drawing_process):
    """Stopped while drawing, the process finishes the figure and ends by itself, also while a process forked from
    this one (a DataLoader's workers) holds a copy of the jobs pipe: it ends on the word to end, not on the end of
    the pipe, and is not killed."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the stand-in for a DataLoader worker
        time.sleep(60)
        os._exit(0)
    try:
        drawing_process.submit("first_layer", {"units": first_layer_units(*MODELS[1]), "path": tmp_path / "w.png"})
        figure_process.stop()
        assert drawing_process._proc.returncode == 0  # ended by itself (a kill after the wait gives -9)
        assert (tmp_path / "w.png").stat().st_size > 0
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_stopped_with_nothing_to_draw_the_process_is_ended_at_once(monkeypatch):
    """An error before the first figure (or the usual end) does not wait for the process's imports: it is
    terminated (SIGTERM, before or after its handler is in place), not told to end after its work."""
    figure_process.start()
    process = figure_process._process
    calls = []
    terminate = process._proc.terminate
    monkeypatch.setattr(process._proc, "terminate", lambda: (calls.append("terminate"), terminate()))
    figure_process.stop()
    assert calls == ["terminate"] and process._proc.returncode in (0, -signal.SIGTERM)


@pytest.mark.slow  # seconds each
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_draws_its_own_figures_and_cannot_stop_the_process(tmp_path, drawing_process):
    units = first_layer_units(*MODELS[0])
    pid = os.fork()
    if pid == 0:  # pragma: no cover - a forked child (a user's own multiprocessing) finishing a run of its own
        code = 1
        try:
            figures = figure_process.Figures()
            figures.add("first_layer", units=units, path=tmp_path / "child.png")
            figures.finish()
            figure_process.stop()  # as its exit handlers would
            code = 0 if not drawing_process.alive else 2
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0  # drawn there, in the child; the child saw no process of its own
    assert drawing_process.alive  # still this process's
    figures = figure_process.Figures()
    figures.add("first_layer", units=units, path=tmp_path / "parent.png")
    figures.finish()
    assert (tmp_path / "child.png").read_bytes() == (tmp_path / "parent.png").read_bytes()


@pytest.mark.slow  # seconds each
def test_relative_paths_are_this_process_s_whatever_its_working_directory(tmp_path, monkeypatch, drawing_process,
                                                                          drawn_here):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)  # after the process started elsewhere
        figures = figure_process.Figures()
        figures.add("first_layer", units=first_layer_units(*MODELS[0]), path="figures/w.png")
        figures.finish()
    assert drawn_here == []
    assert (tmp_path / "a" / "figures" / "w.png").read_bytes() == (tmp_path / "b" / "figures" / "w.png").read_bytes()


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
def test_a_job_larger_than_the_pipe_never_blocks_the_run(tmp_path, drawing_process, drawn_here):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64 * 64, 32))  # 32 x 64 x 64 float32: 512 KiB, 8 pipes' worth
    units = first_layer_units(model, (1, 64, 64))
    os.kill(drawing_process._proc.pid, signal.SIGSTOP)  # reads nothing until continued
    try:
        figures = figure_process.Figures()
        figures.add("first_layer", units=units, path=tmp_path / "wide.png")  # returns: the writer thread waits
    finally:
        os.kill(drawing_process._proc.pid, signal.SIGCONT)
    figures.finish()
    assert drawn_here == [] and (tmp_path / "wide.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
def test_a_process_that_stopped_answering_is_killed_and_the_figure_drawn_here(tmp_path, monkeypatch, capfd,
                                                                              drawing_process, drawn_here):
    monkeypatch.setattr(figure_process, "REPLY_TIMEOUT_S", 0.5)
    monkeypatch.setattr(figure_process, "STOP_WAIT_S", 0.5)  # a stopped process never ends: killed after this
    units = first_layer_units(*MODELS[1])
    os.kill(drawing_process._proc.pid, signal.SIGSTOP)
    figures = figure_process.Figures()
    figures.add("first_layer", units=units, path=tmp_path / "w.png")
    figures.finish()
    assert drawn_here == ["first_layer"] and drawing_process._proc.returncode == -signal.SIGKILL
    assert "has not answered for 0 s: drawing the figures in this process" in capfd.readouterr().err
    first_layer_weights(*MODELS[1], tmp_path / "ref.png")
    assert (tmp_path / "w.png").read_bytes() == (tmp_path / "ref.png").read_bytes()


@pytest.mark.parametrize("used", [False, True])
@pytest.mark.slow  # seconds each
def test_the_process_leaves_no_temporary_matplotlib_folder(tmp_path, monkeypatch, used):
    """Without a writable MPLCONFIGDIR matplotlib makes a temporary folder and removes it as it exits; the
    process runs that on either way it ends (asked to end at once, or after its figures)."""
    (tmp_path / "not-a-folder").write_text("")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "not-a-folder"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    figure_process.start()
    process = figure_process._process
    figures = figure_process.Figures()
    figures.add("first_layer", units=first_layer_units(*MODELS[0]), path=tmp_path / "w.png")
    if used:
        figures.finish()
    else:
        for _ in range(200):  # until its import made the folder
            if any((tmp_path / "tmp").glob("matplotlib-*")):
                break
            time.sleep(0.05)
        process._open.clear()  # as when nothing was sent: the end at once
    figure_process.stop()
    assert process._proc.returncode == 0
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.slow  # 0.31 s each on a 2-core CPU (RESULTS §51)
def test_a_process_that_cannot_import_matplotlib_ends_quietly_and_the_figure_is_drawn_here(tmp_path, monkeypatch,
                                                                                          capfd, drawn_here):
    """(Here the figure then succeeds: this test's process imported matplotlib before the setting; a process
    that cannot import it either raises its own error, once.)"""
    monkeypatch.setenv("MPLBACKEND", "no-such-backend")  # matplotlib's import refuses it
    figure_process.start()
    process = figure_process._process
    figures = figure_process.Figures()
    figures.add("first_layer", units=first_layer_units(*MODELS[0]), path=tmp_path / "w.png")
    figures.finish()
    figure_process.stop()
    assert drawn_here == ["first_layer"] and (tmp_path / "w.png").stat().st_size > 0
    assert process._proc.returncode == 1 and capfd.readouterr().err == ""  # no second traceback


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_a_job_that_cannot_be_sent_is_drawn_here(tmp_path, monkeypatch, drawing_process, drawn_here):
    """Arguments that do not pickle, or a working directory that was removed: drawn in this process."""
    units = first_layer_units(*MODELS[0])
    assert drawing_process.submit("first_layer", {"units": units, "path": tmp_path / "x.png", "f": lambda: 0}) is None
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    figures = figure_process.Figures()
    figures.add("first_layer", units=units, path=tmp_path / "w.png")
    figures.finish()
    assert drawn_here == ["first_layer"] and (tmp_path / "w.png").stat().st_size > 0
    assert drawing_process.alive  # and the process goes on
