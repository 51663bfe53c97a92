"""The report's histogram figure drawn while the run still trains, as soon as its last monitor snapshot is taken.

``histograms.png`` shows the activations and gradients of a run's last monitor snapshot (Glorot & Bengio 2010's
figure). It was drawn after training, with the learning curves and the first layer's weights, and at ~0.35 s it
was the one the run waited for (RESULTS section 49). The snapshot that will be a run's last is known when it is
recorded: fewer steps are left than the monitor's cadence. From then on the drawing process
(:mod:`trainwell.viz.figure_process`), idle on another core while this one trains, draws it from the run's
``monitors.jsonl``; the run takes that figure at its end if no snapshot came after it (a run that stopped early
took its last snapshot before one came that looked final: the figure is then drawn at the end, as before).
"""

from __future__ import annotations

from pathlib import Path

from trainwell.doctor.monitors import Monitor
from trainwell.train.callbacks import Callback, State
from trainwell.viz import figure_process


class HistogramsAhead(Callback):
    """Sends the histogram figure to the drawing process once ``monitor`` records a snapshot with fewer than its
    cadence of the run's ``total_steps`` left (after the monitor in the callbacks: it reads its records); nothing
    when no drawing process runs. :meth:`take` gives the job to the run's other figures at the end."""

    vmap_safe = True

    def __init__(self, monitor: Monitor, run_dir: str | Path, total_steps: int):
        self.monitor, self.run_dir, self.total_steps = monitor, Path(run_dir), total_steps
        self._seen = 0
        self._figures: figure_process.Figures | None = None
        self._step: int | None = None

    def on_fit_start(self, state: State) -> None:
        self._seen = len(self.monitor.records)  # (after the monitor's own start: a resumed run's are restored)

    def on_batch_end(self, state: State) -> None:
        records = self.monitor.records
        if len(records) == self._seen:
            return
        self._seen = len(records)
        step = records[-1]["step"]
        if step + self.monitor.every <= self.total_steps or not figure_process.running():
            return
        if self._figures is not None:  # an earlier one that looked final (a resumed run's plan): waited for
            self._figures.finish()
        self._figures, self._step = figure_process.Figures(), step
        self._figures.add("report", run_dir=self.run_dir, figures=("histograms",))

    def take(self) -> figure_process.Figures | None:
        """The figure's job when it shows the monitor's last snapshot (the caller waits for it with the rest);
        else None, once a job sent earlier has finished (it writes the same file): the caller draws it again."""
        figures, self._figures = self._figures, None
        if figures is None:
            return None
        records = self.monitor.records
        if records and records[-1]["step"] == self._step:
            return figures
        figures.finish()
        return None


__all__ = ["HistogramsAhead"]
